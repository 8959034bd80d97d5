"""Plans in Redis: one JSON plan per agent, its version beside it, changed without lost updates.

Several learner workers may change one agent's plan at once. Each change is read, merged and
written under ``WATCH``: a write that raced another is retried on the newer plan, so every
update lands. The version has its own key so that workers can check it cheaply.

The invariant: an agent's plan version only grows. A reset deletes the plan but moves the
version on, and the next plan learned after it takes the number after that: a worker's hot
cache (``workers/agent/plan_cache.py``), which trusts an entry whose version matches, can never
mistake a new plan, or no plan, for the one it holds.
"""

from __future__ import annotations

from collections.abc import Callable

import redis

from orchestrator.plans import ExecutionPlan
from orchestrator.plans.keys import (
    LEARNER_LAST_REJECTION,
    LEARNER_REJECTED,
    learner_rejected_once_key,
    plan_key,
    plan_seen_key,
    plan_seen_once_key,
    plan_version_key,
)
from orchestrator.state.connection import get_many
from orchestrator.state.scripts import run_script


class PlanStore:
    """Reads and changes plans.

    Parameters:
        client: the state Redis.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def get(self, agent_id: str) -> ExecutionPlan | None:
        """The agent's plan with its records-seen count, or None when it has none."""
        raw, seen = self.client.mget(plan_key(agent_id), plan_seen_key(agent_id))
        if raw is None:
            return None
        plan = ExecutionPlan.model_validate_json(raw)
        plan.records_seen = int(seen or 0)
        return plan

    def get_many(self, agent_ids: list[str]) -> dict[str, ExecutionPlan | None]:
        """The plans of ``agent_ids`` in one round trip (records-seen counts not filled)."""
        raws = get_many(self.client, [plan_key(agent_id) for agent_id in agent_ids])
        return {
            agent_id: ExecutionPlan.model_validate_json(raw) if raw is not None else None
            for agent_id, raw in zip(agent_ids, raws, strict=True)
        }

    def version(self, agent_id: str) -> int | None:
        """The plan's version (one cheap GET): it changes whenever the plan does, a reset
        included; None when the agent never had a plan."""
        raw = self.client.get(plan_version_key(agent_id))
        return int(raw) if raw is not None else None

    def update(
        self, agent_id: str, change: Callable[[ExecutionPlan], ExecutionPlan | None]
    ) -> ExecutionPlan | None:
        """Apply ``change`` to the current plan (an empty one if there is none) and store the
        result as the next version; ``change`` returns None to leave the plan as it is."""
        key, version_key = plan_key(agent_id), plan_version_key(agent_id)
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key, version_key)  # type: ignore[no-untyped-call]
                    # Two reads, not MGET: a Cluster's pipeline refuses MGET (the keys share
                    # the agent's hash tag, so WATCH holds them both).
                    raw = pipe.get(key)
                    raw_version = pipe.get(version_key)
                    current = (
                        ExecutionPlan.model_validate_json(raw)
                        if raw is not None
                        else ExecutionPlan.empty(agent_id)
                    )
                    changed = change(current)
                    if changed is None:
                        pipe.unwatch()
                        return None
                    # After a reset the version key is ahead of the (absent) plan's.
                    changed.version = max(current.version, int(raw_version or 0)) + 1
                    changed.records_seen = 0  # counted in its own key
                    pipe.multi()
                    pipe.set(key, changed.model_dump_json())
                    pipe.set(version_key, changed.version)
                    pipe.execute()
                    return changed
                except redis.WatchError:
                    continue  # another learner changed it first: merge into theirs

    def count_seen(self, counts: dict[str, int]) -> None:
        """Add to the records-seen counts of several agents in one round trip."""
        with self.client.pipeline(transaction=False) as pipe:
            for agent_id, records in counts.items():
                pipe.incrby(plan_seen_key(agent_id), records)
            pipe.execute()

    def count_rejected(self, count: int, reason: str) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            pipe.incrby(LEARNER_REJECTED, count)
            pipe.set(LEARNER_LAST_REJECTION, reason)
            pipe.execute()

    def count_once(
        self, task_id: str, seen: dict[str, list[int]], rejected: list[tuple[int, str]], ttl_s: int
    ) -> None:
        """Count the records of batch ``task_id`` at these positions as seen (by agent) or
        rejected, each position once however often this is called for the batch (its sets
        live ``ttl_s``). One script per agent: each runs on the shard of its keys."""
        for agent_id, positions in seen.items():
            self._count_once(
                plan_seen_key(agent_id), plan_seen_once_key(agent_id, task_id), "", positions, ttl_s
            )
        if rejected:
            reason = rejected[-1][1]
            keys = (LEARNER_REJECTED, learner_rejected_once_key(task_id), LEARNER_LAST_REJECTION)
            self._count_once(*keys, [position for position, _ in rejected], ttl_s, reason)

    def counted(self, task_id: str, agent_id: str | None, position: int) -> bool:
        """Whether the record of batch ``task_id`` at ``position`` (of ``agent_id``, when it
        has a valid one) was counted, as seen or rejected: learned to the end."""
        if self.client.sismember(learner_rejected_once_key(task_id), str(position)):
            return True
        key = plan_seen_once_key(agent_id, task_id) if agent_id is not None else None
        return key is not None and bool(self.client.sismember(key, str(position)))

    def forget_counted(self, task_id: str, agent_ids: list[str]) -> None:
        """Drop what ``count_once`` kept for batch ``task_id``: once the batch is finished, a
        later delivery of it learns nothing, so its positions are not read again."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.delete(learner_rejected_once_key(task_id))
            for agent_id in agent_ids:
                pipe.delete(plan_seen_once_key(agent_id, task_id))
            pipe.execute()

    def _count_once(
        self,
        counter: str,
        positions_key: str,
        last_key: str,
        positions: list[int],
        ttl_s: int,
        last: str = "",
    ) -> None:
        keys = [counter, positions_key, *([last_key] if last_key else [])]
        # In slices: Lua's unpack takes a few thousand arguments at most.
        for start in range(0, len(positions), 1000):
            chunk = positions[start : start + 1000]
            run_script(self.client, "count_once", keys, [ttl_s, last, *chunk], common=False)

    def rejected(self) -> tuple[int, str]:
        """How many records learners rejected, and why the last one was."""
        count, reason = self.client.mget(LEARNER_REJECTED, LEARNER_LAST_REJECTION)
        text = reason.decode() if isinstance(reason, bytes) else reason or ""
        return int(count or 0), text

    def reset(self, agent_id: str) -> bool:
        """Forget the agent's plan; True when there was one. Its version moves on (it is never
        reused), so that workers drop the plan from their caches at their next check."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(plan_key(agent_id))
            pipe.delete(plan_seen_key(agent_id))
            pipe.incr(plan_version_key(agent_id))
            deleted, _, _ = pipe.execute()
        return bool(deleted)
