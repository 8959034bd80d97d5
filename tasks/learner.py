"""Learner tasks (queue ``learner``): run records become plans."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from learners.ingest import ingest_records
from orchestrator.cache_plan_store import CachePlanStore
from orchestrator.learner_limits import MAX_DELIVERIES
from orchestrator.plan_keys import learner_deliveries_key
from orchestrator.plan_store import PlanStore
from orchestrator.settings import get_settings
from workers.app import app
from workers.runtime import store

log = logging.getLogger(__name__)

DELIVERIES_TTL_S = 86_400
"""How long a batch's count of starts is kept, should its learner die on it for good."""


# Every agent run ships a record: a stored result per batch would be one more key per agent
# that nothing reads. What a batch did shows in the worker's log and in Flower.
@app.task(name="tasks.learner.ingest", ignore_result=True, bind=True)
def ingest(self: Task[Any, Any], records: list[Any]) -> dict[str, Any]:
    """Merge a batch of run records into plans; returns what it did. A batch started
    ``MAX_DELIVERIES`` times before, without finishing, is set aside and counted instead."""
    client = store().client
    plans = PlanStore(client)
    deliveries = learner_deliveries_key(str(self.request.id))
    with client.pipeline(transaction=False) as pipe:
        pipe.incr(deliveries)
        pipe.expire(deliveries, DELIVERIES_TTL_S)
        started = int(pipe.execute()[0])
    if started > MAX_DELIVERIES:
        reason = (
            f"a batch of {len(records)} records was started {started - 1} times and never "
            "finished (its learner died on it): set aside"
        )
        plans.count_rejected(len(records), reason)
        log.warning("rejected a batch of run records: %s", reason)
        client.delete(deliveries)
        return {"ingested": 0, "rejected": len(records), "changed_agents": []}
    config = get_settings().cache_governor
    report = ingest_records(records, plans, CachePlanStore(client), config)
    client.delete(deliveries)
    for reason in report.rejected:
        log.warning("rejected a run record: %s", reason)
    return {
        "ingested": report.ingested,
        "rejected": len(report.rejected),
        "changed_agents": report.changed_agents,
        "changed_cache_plans": report.changed_cache_plans,
    }
