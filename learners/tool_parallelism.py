"""The tool-parallelism learner: which tools an agent's runs called at the same time.

Completed tool calls of a run, sorted by start, are swept once: a call that overlaps calls still
running forms a cohort with them (their names, sorted). Deduplicated cohorts merge into the
agent's plan as ``parallel_groups`` with one hint per (tool, group). Calls without an end are
ignored; touching intervals (one ends as the next starts) do not overlap; a run with no overlap
leaves the plan untouched. A cohort of more than ``MAX_GROUP_CALLS`` calls is not learned, so
the sweep costs O(n log n) for n calls (a heap of the running calls' ends) and each cohort at
most ``MAX_GROUP_CALLS`` names, however many calls overlap.
"""

from __future__ import annotations

import copy
import heapq
from collections import Counter
from datetime import datetime

from orchestrator.models import RunRecord
from orchestrator.models.learner_limits import MAX_GROUP_CALLS
from orchestrator.plans import ExecutionPlan, ParallelGroup, ParallelHint


def observed_cohorts(record: RunRecord) -> list[list[str]]:
    """The distinct cohorts of tools that overlapped in ``record``, sorted; none of more than
    ``MAX_GROUP_CALLS`` calls."""
    calls = sorted(
        (
            (call.started_at, call.ended_at, call.name)
            for call in record.calls
            if call.kind == "tool" and call.ended_at is not None
        ),
        key=lambda call: call[0],
    )
    running: list[tuple[datetime, int, str]] = []  # a heap of (end, order, name)
    names: Counter[str] = Counter()  # the names of the running calls
    cohorts: set[tuple[str, ...]] = set()
    for order, (started, ended, name) in enumerate(calls):
        while running and running[0][0] <= started:
            names[heapq.heappop(running)[2]] -= 1
        if 0 < len(running) < MAX_GROUP_CALLS:
            cohorts.add(tuple(sorted([*names.elements(), name])))
        heapq.heappush(running, (ended, order, name))
        names[name] += 1
    return [list(cohort) for cohort in sorted(cohorts)]


def new_cohorts(plan: ExecutionPlan, cohorts: list[list[str]]) -> list[list[str]]:
    """The ``cohorts`` that ``plan`` has no group for yet."""
    known = {group.group_id for group in plan.parallel_groups}
    return [cohort for cohort in cohorts if ParallelGroup.of(cohort).group_id not in known]


def merge_cohorts(plan: ExecutionPlan, cohorts: list[list[str]], run_id: str) -> ExecutionPlan:
    """``plan`` with ``cohorts`` added: groups by id, one learned hint per (tool, group). Merging
    the same cohorts again changes nothing but the last run id."""
    groups = {group.group_id: group for group in plan.parallel_groups}
    hints = {(h.tool_name, h.group_id): h for h in plan.metadata_template.parallel_hints}
    for cohort in cohorts:
        group = ParallelGroup.of(cohort)
        groups.setdefault(group.group_id, group)
        for name in dict.fromkeys(group.tool_names):
            hints.setdefault(
                (name, group.group_id), ParallelHint(tool_name=name, group_id=group.group_id)
            )
    # A shallow copy with new lists: the groups and hints are the plan's own objects, which
    # nothing changes once made, so copying them deep (the whole plan, for every record a
    # learner merges) only cost time: 27 s of CPU for 600 records into a full plan.
    template = plan.metadata_template
    return plan.model_copy(
        update={
            "parallel_groups": [groups[key] for key in sorted(groups)],
            "metadata_template": template.model_copy(
                update={
                    "agent_id": plan.agent_id,
                    "run_id": run_id,
                    "parallel_hints": [hints[key] for key in sorted(hints)],
                    "extensions": copy.deepcopy(template.extensions),
                }
            ),
        }
    )
