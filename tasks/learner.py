"""Learner tasks (queue ``learner``): run records become plans."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from learners.redelivery import deliveries_ttl_s, ingest_batch
from workers.app import app, runtime

log = logging.getLogger(__name__)


# Every agent run ships a record: a stored result per batch would be one more key per agent
# that nothing reads. What a batch did shows in the worker's log and in Flower.
@app.task(name="tasks.learner.ingest", ignore_result=True, bind=True)
def ingest(self: Task[Any, Any], records: list[Any]) -> dict[str, Any]:
    """Merge a batch of run records into plans; returns what it did. A batch delivered again
    after its learner died on it is learned a record at a time, and the record a learner died
    on is set aside; no record is counted twice, and one learner at a time learns a batch
    (``learners.redelivery``)."""
    task_id = str(self.request.id)
    settings = runtime.settings
    ttl_s = deliveries_ttl_s(settings.visibility_timeout_s)
    report = ingest_batch(
        runtime.store.client, task_id, records, settings.cache_governor, ttl_s, settings.lease_s
    )
    for reason in report.rejected:
        log.warning("rejected a run record: %s", reason)
    if report.dropped_cohorts:
        log.info("tool plans full: %d new cohorts not learned", report.dropped_cohorts)
    return {
        "ingested": report.ingested,
        "rejected": len(report.rejected),
        "changed_agents": report.changed_agents,
        "changed_cache_plans": report.changed_cache_plans,
        "dropped_cohorts": report.dropped_cohorts,
    }
