"""Cache plans in Redis: the plan workers read, the learner's window beside it, both changed
together without lost updates.

As with tool plans (``plan_store.py``), each change is read, merged and written under
``WATCH``; a write that raced another learner's is merged again into the newer state.
"""

from __future__ import annotations

from collections.abc import Callable

import redis
from pydantic import TypeAdapter

from orchestrator.plans.cache_plans import CachePlan, Observation
from orchestrator.plans.keys import cache_plan_key, cache_plan_version_key, cache_window_key

Window = dict[str, list[Observation]]
"""Observations by learning key, oldest first."""
_WINDOW = TypeAdapter(Window)
Change = Callable[[CachePlan, Window], tuple[CachePlan, Window] | None]


class CachePlanStore:
    """Reads and changes cache plans.

    Parameters:
        client: the state Redis.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def get(self, agent_id: str) -> CachePlan | None:
        """The agent's cache plan, or None when nothing was learned."""
        raw = self.client.get(cache_plan_key(agent_id))
        return CachePlan.model_validate_json(raw) if raw is not None else None

    def version(self, agent_id: str) -> int | None:
        """The plan's version, or None without a plan (one cheap GET)."""
        raw = self.client.get(cache_plan_version_key(agent_id))
        return int(raw) if raw is not None else None

    def window(self, agent_id: str) -> Window:
        raw = self.client.get(cache_window_key(agent_id))
        return _WINDOW.validate_json(raw) if raw is not None else {}

    def update(self, agent_id: str, change: Change) -> CachePlan | None:
        """Apply ``change`` to the plan and window (empty ones if there are none) and store
        the result as the next version; ``change`` returns None to leave them as they are."""
        keys = (
            cache_plan_key(agent_id),
            cache_window_key(agent_id),
            cache_plan_version_key(agent_id),
        )
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(*keys)  # type: ignore[no-untyped-call]
                    raw_plan, raw_window, raw_version = pipe.mget(keys)
                    plan = (
                        CachePlan.model_validate_json(raw_plan)
                        if raw_plan is not None
                        else CachePlan.empty(agent_id)
                    )
                    window = _WINDOW.validate_json(raw_window) if raw_window is not None else {}
                    changed = change(plan, window)
                    if changed is None:
                        pipe.unwatch()
                        return None
                    new_plan, new_window = changed
                    # The version key outlives a reset, so a worker's cache never takes a new
                    # plan for the one it holds.
                    new_plan.version = int(raw_version or 0) + 1
                    pipe.multi()
                    pipe.set(keys[0], new_plan.model_dump_json())
                    pipe.set(keys[1], _WINDOW.dump_json(new_window))
                    pipe.set(keys[2], new_plan.version)
                    pipe.execute()
                    return new_plan
                except redis.WatchError:
                    continue  # another learner changed it first: merge into theirs

    def reset(self, agent_id: str) -> bool:
        """Forget what was learned of the agent's prompts; True when there was something.
        The version moves on, so that workers drop the plan from their caches at once."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(cache_plan_key(agent_id), cache_window_key(agent_id))
            pipe.incr(cache_plan_version_key(agent_id))
            deleted, _ = pipe.execute()
        return bool(deleted)
