"""Learner tasks (queue ``learner``): run records become plans."""

from __future__ import annotations

import logging
from typing import Any

from learners.ingest import ingest_records
from orchestrator.cache_plan_store import CachePlanStore
from orchestrator.plan_store import PlanStore
from orchestrator.settings import get_settings
from workers.app import app
from workers.runtime import store

log = logging.getLogger(__name__)


# Every agent run ships a record: a stored result per batch would be one more key per agent
# that nothing reads. What a batch did shows in the worker's log and in Flower.
@app.task(name="tasks.learner.ingest", ignore_result=True)
def ingest(records: list[Any]) -> dict[str, Any]:
    """Merge a batch of run records into plans; returns what it did."""
    client = store().client
    config = get_settings().cache_governor
    report = ingest_records(records, PlanStore(client), CachePlanStore(client), config)
    for reason in report.rejected:
        log.warning("rejected a run record: %s", reason)
    return {
        "ingested": report.ingested,
        "rejected": len(report.rejected),
        "changed_agents": report.changed_agents,
        "changed_cache_plans": report.changed_cache_plans,
    }
