"""Ingest run records into plans: validate, group by agent, run every learner.

A malformed record is rejected with its reason and counted; it never stops the others nor
touches a plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from learners.prompt_cache import learn_prompts
from learners.tool_parallelism import merge_cohorts, observed_cohorts
from orchestrator.cache_config import CacheGovernorConfig
from orchestrator.cache_plan_store import CachePlanStore
from orchestrator.models import RunRecord
from orchestrator.plan_store import PlanStore
from orchestrator.plans import ExecutionPlan


@dataclass
class IngestReport:
    """What one batch did: records taken, records rejected (with reasons), plans changed."""

    ingested: int = 0
    rejected: list[str] = field(default_factory=list)
    changed_agents: list[str] = field(default_factory=list)
    changed_cache_plans: list[str] = field(default_factory=list)


def ingest_records(
    raw_records: list[Any],
    plans: PlanStore,
    cache_plans: CachePlanStore | None = None,
    cache_config: CacheGovernorConfig | None = None,
) -> IngestReport:
    """Validate ``raw_records`` and merge what they show into their agents' plans: tool
    plans, and cache plans when ``cache_plans`` is given."""
    report = IngestReport()
    by_agent: dict[str, list[RunRecord]] = {}
    for position, raw in enumerate(raw_records):
        try:
            record = RunRecord.model_validate(raw)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "record"
            report.rejected.append(f"record {position}: {where}: {first['msg']}")
            continue
        by_agent.setdefault(record.agent_id, []).append(record)
    if report.rejected:
        plans.count_rejected(len(report.rejected), report.rejected[-1])
    if not by_agent:
        return report
    plans.count_seen({agent_id: len(records) for agent_id, records in by_agent.items()})
    if cache_plans is not None:
        config = cache_config or CacheGovernorConfig()
        report.changed_cache_plans = learn_prompts(by_agent, cache_plans, config)
    # Each plan is read under WATCH in its update, which writes nothing when the plan already
    # holds what the batch saw: a plan read earlier could be reset in between, and the batch
    # would be lost.
    for agent_id, records in by_agent.items():
        report.ingested += len(records)
        cohorts: dict[tuple[str, ...], None] = {}
        for record in records:
            cohorts.update(dict.fromkeys(tuple(c) for c in observed_cohorts(record)))
        if not cohorts:
            continue  # no overlap: the plan stays as it is
        merge = _merger([list(cohort) for cohort in cohorts], records[-1].run_id)
        if plans.update(agent_id, merge) is not None:
            report.changed_agents.append(agent_id)
    return report


def _merger(
    cohorts: list[list[str]], run_id: str
) -> Callable[[ExecutionPlan], ExecutionPlan | None]:
    """The change that merges ``cohorts``; None (no write) when the plan already has them."""

    def merge(plan: ExecutionPlan) -> ExecutionPlan | None:
        merged = merge_cohorts(plan, cohorts, run_id)
        same_groups = merged.parallel_groups == plan.parallel_groups
        same_hints = (
            merged.metadata_template.parallel_hints == plan.metadata_template.parallel_hints
        )
        return None if same_groups and same_hints and plan.version > 0 else merged

    return merge
