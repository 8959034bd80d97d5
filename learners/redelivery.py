"""A batch of records whose learner died on it: delivered again, never counted twice, never
delivered for ever.

Learner tasks are acknowledged late, so a batch whose learner was killed (out of memory, say)
is delivered again, and the Redis broker delivers a batch again, to a second learner, when the
first has held it past ``visibility_timeout_s``. So:

- One learner at a time per batch: each start holds the batch's slot
  (``workers.limits.SharedLimit``, one holder, under a lease its holder renews); a second
  delivery waits for it, and the slot of a killed learner is free again within ``lease_s``.
- Each record is counted once for its batch, as seen or rejected, after every learner ran on
  it (``PlanStore.count_once``, keyed by the batch's task id and the record's position): a start
  killed after counting leaves counts that the next start does not raise again.
- The batch's starts are counted in ``ao:learner:{learner}:deliveries:TASK_ID`` (a hash:
  ``starts``, ``done`` and ``finished``). The first start learns the batch whole. A later one
  learns its records one at a time, noting each one ``done``, and skips those already counted:
  the record a start died on is then known, and the next start sets it aside alone (counted,
  with the reason) and goes on after it, unless it was counted (learned to the end) before the
  kill. Every start after the second gets at least one record further, so a batch is delivered
  at most once more than it holds records that kill learners.
- A batch learned to the end is marked ``finished`` (the hash is kept, not deleted): a delivery
  after that (a learner killed before its acknowledgement) learns and counts nothing.

The hash and the counted positions live ``ttl_s``: at least the broker's visibility timeout
plus a margin, so that they outlast the gap between two deliveries of the batch.
"""

from __future__ import annotations

from typing import Any

import redis

from learners.ingest import IngestReport, ingest_records
from orchestrator.config.governor import CacheGovernorConfig
from orchestrator.models import RunRecord
from orchestrator.plans.cache_store import CachePlanStore
from orchestrator.plans.keys import learner_deliveries_key
from orchestrator.plans.store import PlanStore
from workers.limits import SharedLimit

DELIVERIES_TTL_S = 86_400
"""The least time a batch's starts and counts are remembered."""
REDELIVERY_MARGIN_S = 3_600
"""How much longer than the visibility timeout they are remembered, at the least."""


def deliveries_ttl_s(visibility_timeout_s: int) -> int:
    """How long a batch's starts and counts are remembered, for the broker's timeout."""
    return max(DELIVERIES_TTL_S, visibility_timeout_s + REDELIVERY_MARGIN_S)


def ingest_batch(
    client: redis.Redis,
    task_id: str,
    records: list[Any],
    config: CacheGovernorConfig,
    ttl_s: int = DELIVERIES_TTL_S,
    lease_s: float = 30.0,
) -> IngestReport:
    """Learn ``records``, delivered as task ``task_id``, as the module says."""
    with SharedLimit(client, f"learner:delivery:{task_id}", 1, None, lease_s).hold():
        return _ingest(client, task_id, records, config, ttl_s)


def _ingest(
    client: redis.Redis, task_id: str, records: list[Any], config: CacheGovernorConfig, ttl_s: int
) -> IngestReport:
    plans, cache_plans = PlanStore(client), CachePlanStore(client)
    key = learner_deliveries_key(task_id)
    with client.pipeline(transaction=False) as pipe:
        pipe.hincrby(key, "starts", 1)
        pipe.hmget(key, ["done", "finished"])
        pipe.expire(key, ttl_s)
        starts, (done, finished), _ = pipe.execute()
    if finished:
        return IngestReport()  # learned to the end by an earlier delivery
    once = (task_id, ttl_s)
    if int(starts) == 1:
        report = ingest_records(records, plans, cache_plans, config, once=once)
        _finish(client, plans, key, task_id, report.seen_agents, ttl_s)
        return report
    report = IngestReport()
    position = int(done or 0)
    if int(starts) > 2 and position < len(records):
        if not plans.counted(task_id, _agent_of(records[position]), position):
            # The previous start, learning one record at a time, died on this one.
            reason = f"record {position}: its learner died on it (delivered {int(starts)} times)"
            plans.count_once(task_id, {}, [(position, reason)], ttl_s)
            report.rejected.append(reason)
        position += 1
        client.hset(key, "done", position)
    for index in range(position, len(records)):
        agent_id = _agent_of(records[index])
        if not plans.counted(task_id, agent_id, index):  # counted: learned by a start before
            one = ingest_records(
                records[index : index + 1], plans, cache_plans, config, index, once
            )
            report.ingested += one.ingested
            report.rejected += one.rejected
            report.changed_agents += one.changed_agents
            report.changed_cache_plans += one.changed_cache_plans
            report.dropped_cohorts += one.dropped_cohorts
        client.hset(key, "done", index + 1)
    agents = {agent for raw in records if (agent := _agent_of(raw)) is not None}
    _finish(client, plans, key, task_id, sorted(agents), ttl_s)
    return report


def _finish(
    client: redis.Redis, plans: PlanStore, key: str, task_id: str, agents: list[str], ttl_s: int
) -> None:
    """Mark the batch learned to the end; its counted positions are not read again."""
    with client.pipeline(transaction=False) as pipe:
        pipe.hset(key, "finished", 1)
        pipe.expire(key, ttl_s)
        pipe.execute()
    plans.forget_counted(task_id, agents)


def _agent_of(raw: Any) -> str | None:
    """The agent of record ``raw``, or None when it is not a valid record."""
    try:
        return RunRecord.model_validate(raw).agent_id
    except ValueError:  # pydantic's ValidationError is one
        return None
