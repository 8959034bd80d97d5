"""How a plan changes a run: which tools may run together, told to the model or scheduled."""

from __future__ import annotations

from collections import Counter

from orchestrator.models import AgentSpec, ToolCall
from orchestrator.plans import ExecutionPlan

PARALLEL_FLAG_PROVIDERS = frozenset({"openai", "openai_responses"})


def effective_parallel_groups(spec: AgentSpec, plan: ExecutionPlan | None) -> list[list[str]]:
    """The user's groups, then the learned groups that touch none of the user's tools: for a
    tool the user grouped, explicit hints win over learned ones."""
    explicit = [sorted(group) for group in spec.parallel_groups]
    explicit_tools = {name for group in explicit for name in group}
    learned = [group.tool_names for group in plan.parallel_groups] if plan else []
    return explicit + [group for group in learned if not explicit_tools.intersection(group)]


def hint_text(groups: list[list[str]]) -> str:
    """What ``inject_hints`` adds to the system prompt."""
    listed = "; ".join(", ".join(dict.fromkeys(group)) for group in groups)
    return (
        "These tools may be called together in one turn; when you need several of them, "
        f"request them in the same turn: {listed}."
    )


def fits(names: list[str], group: list[str]) -> bool:
    """Whether calls of ``names`` can all run as members of ``group`` (a name twice needs the
    group to hold it twice)."""
    need, have = Counter(names), Counter(group)
    return all(have[name] >= count for name, count in need.items())


def plan_batches(calls: list[ToolCall], groups: list[list[str]]) -> list[list[int]]:
    """Call indices in batches, in call order: consecutive calls that fit one group share a
    batch (they run together); any other call is a batch of its own."""
    batches: list[list[int]] = []
    for index, call in enumerate(calls):
        if batches:
            names = [calls[i].name for i in batches[-1]] + [call.name]
            if any(fits(names, group) for group in groups):
                batches[-1].append(index)
                continue
        batches.append([index])
    return batches
