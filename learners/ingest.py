"""Ingest run records into plans: validate, bound, group by agent, run every learner.

Each record is learned or set aside on its own. A record is set aside, with its reason, when
it is malformed, over the limits of ``orchestrator.models.learner_limits``, when a learner fails on
it, or when its own cohorts would take even an empty tool plan past the plan limits; it is
counted (``PlanStore.count_rejected``), touches no plan and no seen-count, and never stops the
other records of its batch.

An agent's plan that is full (its history reached the limits, not the record) keeps what it
learned: a record's new cohorts that do not fit are dropped (``IngestReport.dropped_cohorts``)
and the record is otherwise learned as usual: counted as seen, read by the cache learner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from learners.prompt_cache import Keyed, learn_prompts, observations_of
from learners.tool_parallelism import merge_cohorts, new_cohorts, observed_cohorts
from orchestrator.config.governor import CacheGovernorConfig
from orchestrator.models import RunRecord
from orchestrator.models.learner_limits import (
    MAX_GROUPS_PER_PLAN,
    MAX_PLAN_BYTES,
    record_over_limits,
)
from orchestrator.plans import ExecutionPlan
from orchestrator.plans.cache_plans import Observation
from orchestrator.plans.cache_store import CachePlanStore
from orchestrator.plans.store import PlanStore


@dataclass
class IngestReport:
    """What one batch did: records taken, records set aside (with reasons), plans changed."""

    ingested: int = 0
    rejected: list[str] = field(default_factory=list)
    changed_agents: list[str] = field(default_factory=list)
    changed_cache_plans: list[str] = field(default_factory=list)
    seen_agents: list[str] = field(default_factory=list)
    """The agents whose records were counted as seen."""
    dropped_cohorts: int = 0
    """New cohorts left out of tool plans that were full."""


@dataclass(eq=False)  # records are told apart by identity, not by a deep comparison
class Learned:
    """What the learners read in one record: its tool cohorts and its prompt observations."""

    position: int
    record: RunRecord
    cohorts: list[list[str]]
    observations: list[tuple[Keyed, Observation]]


def ingest_records(
    raw_records: list[Any],
    plans: PlanStore,
    cache_plans: CachePlanStore | None = None,
    cache_config: CacheGovernorConfig | None = None,
    first_position: int = 0,
    once: tuple[str, int] | None = None,
) -> IngestReport:
    """Validate ``raw_records`` and merge what they show into their agents' plans: tool
    plans, and cache plans when ``cache_plans`` is given. Reasons name each record by its
    position in its batch, the first being ``first_position``. With ``once`` (the batch's
    task id and how long to remember it), each record is counted once for its batch however
    often it is learned (``PlanStore.count_once``), and only after every learner ran on it: a
    record counted is a record learned to the end."""
    report = IngestReport()
    config = cache_config or CacheGovernorConfig()
    by_agent: dict[str, list[Learned]] = {}
    rejected: list[tuple[int, str]] = []
    for position, raw in enumerate(raw_records, first_position):
        learned = _read(position, raw, config, report.rejected)
        if learned is None:
            rejected.append((position, report.rejected[-1]))
        else:
            by_agent.setdefault(learned.record.agent_id, []).append(learned)
    # Each plan is read under WATCH in its update, which writes nothing when the plan already
    # holds what the batch saw: a plan read earlier could be reset in between, and the batch
    # would be lost.
    for agent_id, records in by_agent.items():
        if not any(learned.cohorts for learned in records):
            continue  # no overlap: the plan stays as it is
        merge = _Merger(records)
        if plans.update(agent_id, merge) is not None:
            report.changed_agents.append(agent_id)
        report.dropped_cohorts += merge.dropped
        for learned, reason in merge.set_aside:
            report.rejected.append(f"record {learned.position}: {reason}")
            rejected.append((learned.position, report.rejected[-1]))
        by_agent[agent_id] = [each for each in records if each not in merge.kept_out]
    by_agent = {agent_id: records for agent_id, records in by_agent.items() if records}
    report.ingested = sum(len(records) for records in by_agent.values())
    report.seen_agents = list(by_agent)
    if cache_plans is not None and by_agent:
        observed = {
            agent_id: [found for learned in records for found in learned.observations]
            for agent_id, records in by_agent.items()
        }
        report.changed_cache_plans = learn_prompts(observed, cache_plans, config)
    if once is not None:
        seen = {agent: [each.position for each in records] for agent, records in by_agent.items()}
        plans.count_once(once[0], seen, rejected, once[1])
        return report
    if rejected:
        plans.count_rejected(len(rejected), rejected[-1][1])
    if by_agent:
        plans.count_seen({agent_id: len(records) for agent_id, records in by_agent.items()})
    return report


def _read(
    position: int, raw: Any, config: CacheGovernorConfig, rejected: list[str]
) -> Learned | None:
    """What the learners read in ``raw``, or None (and why, in ``rejected``) when it is set
    aside: malformed, over the limits, or a learner failed on it."""
    try:
        record = RunRecord.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        rejected.append(f"record {position}: {where}: {first['msg']}")
        return None
    problem = record_over_limits(record)
    if problem is not None:
        rejected.append(f"record {position}: {problem}")
        return None
    try:
        return Learned(position, record, observed_cohorts(record), observations_of(record, config))
    except Exception as error:  # a learner's bug on one record must not cost the batch
        rejected.append(f"record {position}: a learner failed on it ({type(error).__name__})")
        return None


class _Merger:
    """The change that merges the cohorts of an agent's records into its plan, record by
    record. A record whose own cohorts break the plan limits on an empty plan is left out
    (``set_aside``, with why); of the others, new cohorts that would take the plan past
    ``MAX_GROUPS_PER_PLAN`` groups or ``MAX_PLAN_BYTES`` are dropped (``dropped``) and the
    rest merged. Returns None (no write) when the plan already holds everything kept."""

    def __init__(self, records: list[Learned]) -> None:
        self._records = [learned for learned in records if learned.cohorts]
        # What a record costs on its own does not change when a transaction is retried.
        self._own = {
            id(learned): _over_plan_limits(
                merge_cohorts(
                    ExecutionPlan.empty(learned.record.agent_id),
                    learned.cohorts,
                    learned.record.run_id,
                )
            )
            for learned in self._records
        }
        self.set_aside: list[tuple[Learned, str]] = []
        self.dropped = 0

    @property
    def kept_out(self) -> list[Learned]:
        return [learned for learned, _ in self.set_aside]

    def __call__(self, plan: ExecutionPlan) -> ExecutionPlan | None:
        self.set_aside, self.dropped = [], 0  # a retried transaction merges into a newer plan
        merged = plan
        for learned in self._records:
            reason = self._own[id(learned)]
            if reason is not None:
                self.set_aside.append((learned, reason))
                continue
            merged, dropped = _merge_within_limits(merged, learned)
            self.dropped += dropped
        if merged is plan:
            return None
        same_groups = merged.parallel_groups == plan.parallel_groups
        same_hints = (
            merged.metadata_template.parallel_hints == plan.metadata_template.parallel_hints
        )
        return None if same_groups and same_hints and plan.version > 0 else merged


def _merge_within_limits(plan: ExecutionPlan, learned: Learned) -> tuple[ExecutionPlan, int]:
    """``plan`` with as many of ``learned``'s cohorts as fit in the plan limits (the known ones
    always do, then new ones in order), and how many new ones were dropped."""
    run_id = learned.record.run_id
    fresh = new_cohorts(plan, learned.cohorts)
    if not fresh:  # no new group: the plan stays as large as it was, no need to measure it
        return merge_cohorts(plan, learned.cohorts, run_id), 0
    added = {tuple(cohort) for cohort in fresh}
    known = [cohort for cohort in learned.cohorts if tuple(cohort) not in added]
    candidate = merge_cohorts(plan, learned.cohorts, run_id)
    if _over_plan_limits(candidate) is None:
        return candidate, 0
    # The plan only grows with the new cohorts taken: the longest prefix of them that fits
    # is found in log(n) merges. None fitting leaves the plan as it was.
    best, taken = plan, 0
    low, high = 1, len(fresh) - 1
    while low <= high:
        middle = (low + high) // 2
        candidate = merge_cohorts(plan, known + fresh[:middle], run_id)
        if _over_plan_limits(candidate) is None:
            best, taken, low = candidate, middle, middle + 1
        else:
            high = middle - 1
    return best, len(fresh) - taken


def _over_plan_limits(candidate: ExecutionPlan) -> str | None:
    """Why ``candidate`` breaks the plan limits, or None."""
    if len(candidate.parallel_groups) > MAX_GROUPS_PER_PLAN:
        return (
            f"its cohorts would give the tool plan {len(candidate.parallel_groups):,} groups, "
            f"more than {MAX_GROUPS_PER_PLAN:,}"
        )
    size = len(candidate.model_dump_json())
    if size > MAX_PLAN_BYTES:
        return f"its cohorts would make the tool plan {size:,} bytes, more than {MAX_PLAN_BYTES:,}"
    return None
