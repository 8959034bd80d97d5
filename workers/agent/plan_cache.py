"""Plans as agent workers see them (tool plans and cache plans), through a hot cache.

Each agent's entry is checked against the plan's version key at most every ``max_age_s``, so a
new version is seen within a second of being written, and a tool call never costs a Redis round
trip.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

PlanT = TypeVar("PlanT")
PlanT_co = TypeVar("PlanT_co", covariant=True)


class VersionedPlans(Protocol[PlanT_co]):
    """A plan store: plans by agent, each with a version that changes with it."""

    def get(self, agent_id: str) -> PlanT_co | None: ...

    def version(self, agent_id: str) -> int | None: ...


@dataclass
class _Entry(Generic[PlanT]):
    plan: PlanT | None
    version: int | None
    checked: float


class PlanCache(Generic[PlanT]):
    """Parameters:
    plans: the plan store.
    max_age_s: how long an entry is trusted before its version is checked again.
    """

    def __init__(self, plans: VersionedPlans[PlanT], max_age_s: float = 0.5) -> None:
        self._plans = plans
        self._max_age_s = max_age_s
        self._entries: dict[str, _Entry[PlanT]] = {}
        self._lock = threading.Lock()

    def get(self, agent_id: str) -> PlanT | None:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(agent_id)
        if entry is not None and now - entry.checked < self._max_age_s:
            return entry.plan
        version = self._plans.version(agent_id)
        if entry is not None and version == entry.version:
            entry.checked = now
            return entry.plan
        plan = self._plans.get(agent_id) if version is not None else None
        with self._lock:
            self._entries[agent_id] = _Entry(plan, version, now)
        return plan
