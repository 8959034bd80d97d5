"""A batch of records whose learner died on it: delivered again, never for ever.

Learner tasks are acknowledged late, so a batch whose learner was killed (out of memory, say)
is delivered again. Each start is counted in ``ao:learner:{learner}:deliveries:TASK_ID`` (a
hash: ``starts``, and ``done``, the records finished one at a time). The first start learns the
batch whole. A later one learns its records one at a time, noting each one finished: the
record a start dies on is then known, and the next start sets it aside alone (counted, with
the reason) and goes on after it. Every start after the second gets at least one record
further, so a batch is delivered at most once more than it holds records that kill learners.
"""

from __future__ import annotations

from typing import Any

import redis

from learners.ingest import IngestReport, ingest_records
from orchestrator.cache_config import CacheGovernorConfig
from orchestrator.cache_plan_store import CachePlanStore
from orchestrator.plan_keys import learner_deliveries_key
from orchestrator.plan_store import PlanStore

DELIVERIES_TTL_S = 86_400
"""How long a batch's starts are remembered, should its learners die on it for good."""


def ingest_batch(
    client: redis.Redis,
    task_id: str,
    records: list[Any],
    config: CacheGovernorConfig,
) -> IngestReport:
    """Learn ``records``, delivered as task ``task_id``, as the module says."""
    plans, cache_plans = PlanStore(client), CachePlanStore(client)
    key = learner_deliveries_key(task_id)
    with client.pipeline(transaction=False) as pipe:
        pipe.hincrby(key, "starts", 1)
        pipe.hget(key, "done")
        pipe.expire(key, DELIVERIES_TTL_S)
        starts, done, _ = pipe.execute()
    if int(starts) == 1:
        report = ingest_records(records, plans, cache_plans, config)
        client.delete(key)
        return report
    report = IngestReport()
    position = int(done or 0)
    if int(starts) > 2 and position < len(records):
        # The previous start, learning one record at a time, died on this one.
        reason = f"record {position}: its learner died on it (delivered {int(starts)} times)"
        plans.count_rejected(1, reason)
        report.rejected.append(reason)
        position += 1
        client.hset(key, "done", position)
    for index in range(position, len(records)):
        one = ingest_records(records[index : index + 1], plans, cache_plans, config, index)
        client.hset(key, "done", index + 1)
        report.ingested += one.ingested
        report.rejected += one.rejected
        report.changed_agents += one.changed_agents
        report.changed_cache_plans += one.changed_cache_plans
        report.dropped_cohorts += one.dropped_cohorts
    client.delete(key)
    return report
