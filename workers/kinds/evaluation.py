"""Evaluation strategies of parallel branches: which branch a run selects.

A strategy is a function ``(prompt, outcomes) -> config index``. Built-ins are named; any other
is a ``@strategy`` registered in the worker's ``ORCHESTRATOR_STRATEGY_MODULES``: a run names a
strategy, and nothing it names is ever imported. Whatever a strategy returns
is checked: an index out of range, or a branch that did not succeed chosen while another did,
is a ``StrategyError``, never a silent clamp.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from orchestrator.models.results import BranchOutcome
from orchestrator.tokens import estimate_tokens
from workers.kinds.strategy_registry import StrategyRegistry

Strategy = Callable[[str | None, list[BranchOutcome]], int]

JUDGE_SHARE = 0.8
"""The judge's prompt must fit this share of its model's context window."""


class StrategyError(Exception):
    """A strategy could not select a branch, or selected one it must not."""


def _succeeded(outcomes: list[BranchOutcome]) -> list[BranchOutcome]:
    return [o for o in outcomes if o.output.succeeded()]


def transparent(prompt: str | None, outcomes: list[BranchOutcome]) -> int:
    """The one branch there is."""
    return 0


def pick_first(prompt: str | None, outcomes: list[BranchOutcome]) -> int:
    """The first branch in config order that succeeded (not the first to finish)."""
    return _succeeded(outcomes)[0].config_index


def token_efficient(prompt: str | None, outcomes: list[BranchOutcome]) -> int:
    """The successful branch that used the fewest tokens; ties go to the earlier config."""
    return min(
        _succeeded(outcomes), key=lambda o: (o.usage.total_tokens, o.config_index)
    ).config_index


def elaborate(prompt: str | None, outcomes: list[BranchOutcome]) -> int:
    """The successful branch that used the most tokens; ties go to the earlier config."""
    return min(
        _succeeded(outcomes), key=lambda o: (-o.usage.total_tokens, o.config_index)
    ).config_index


BUILTIN: dict[str, Strategy] = {
    "transparent": transparent,
    "pick_first": pick_first,
    "token_efficient": token_efficient,
    "elaborate": elaborate,
}


def load_strategy(name: str, registry: StrategyRegistry) -> Strategy:
    """A built-in strategy, or one registered on this worker, by name."""
    if name in BUILTIN:
        return BUILTIN[name]
    registered = registry.get(name)
    if registered is None:
        served = ", ".join(registry.names) or "none"
        raise StrategyError(f"strategy {name!r} is not registered on this worker ({served})")
    return registered


def checked_choice(name: str, choice: object, outcomes: list[BranchOutcome]) -> int:
    """``choice`` if it is a valid selection from ``outcomes``, else a ``StrategyError``."""
    count = len(outcomes)
    if not isinstance(choice, int) or isinstance(choice, bool):
        raise StrategyError(f"strategy {name!r} returned {choice!r}, not a branch index")
    if not 0 <= choice < count:
        raise StrategyError(
            f"strategy {name!r} chose branch {choice}, but there are {count} (0 to {count - 1})"
        )
    chosen = outcomes[choice]
    if not chosen.output.succeeded() and _succeeded(outcomes):
        raise StrategyError(
            f"strategy {name!r} chose branch {choice} ({chosen.loop_id}), which ended "
            f"{chosen.output.outcome}, while another branch succeeded"
        )
    return choice


def judge_prompt(task: str, outcomes: list[BranchOutcome], instructions: str, window: int) -> str:
    """The judge's prompt: the task and each successful branch's final answer as numbered
    candidates, compacted in tiers until it fits ``JUDGE_SHARE`` of the judge's window.

    Tiers: everything; the task cut to 4,000 characters and the answers to an equal share of
    what is left; then ever shorter fixed cuts. The last tier is used if none fits.
    """
    candidates = _succeeded(outcomes)
    budget = int(window * JUDGE_SHARE) - estimate_tokens(instructions)
    frame = _judge_text(task, ["" for _ in candidates])
    share = max(40, (budget * 4 - len(frame) - min(len(task), 4000)) // max(1, len(candidates)))
    tiers: list[tuple[int | None, int | None]] = [
        (None, None),
        (4000, share),
        (1000, 400),
        (300, 120),
        (100, 40),
    ]
    text = ""
    for task_chars, answer_chars in tiers:
        answers = [_cut(o.output.answer, answer_chars) for o in candidates]
        text = _judge_text(_cut(task, task_chars), answers)
        if estimate_tokens(text) <= budget:
            return text
    return text


def _cut(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return text[: max(0, limit - 15)] + " [...cut]"


def _judge_text(task: str, answers: list[str]) -> str:
    blocks = "\n\n".join(f"Candidate {n}:\n{answer}" for n, answer in enumerate(answers, 1))
    return (
        f"Several agents answered the same task. Pick the best answer.\n\nTask:\n{task}\n\n"
        f"{blocks}\n\nReply with the number of the best candidate (1 to {len(answers)})."
    )


def judge_choice(answer: str, outcomes: list[BranchOutcome]) -> int:
    """The config index named by the judge's ``answer`` (its first number, 1-based over the
    successful branches in config order)."""
    candidates = _succeeded(outcomes)
    found = re.search(r"\d+", answer)
    if found is None:
        raise StrategyError(f"the judge named no candidate: {answer[:200]!r}")
    number = int(found.group())
    if not 1 <= number <= len(candidates):
        raise StrategyError(
            f"the judge chose candidate {number}, but there are {len(candidates)} "
            f"(1 to {len(candidates)})"
        )
    return candidates[number - 1].config_index
