"""A run's state as its status reports it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

RunState = Literal["pending", "running", "succeeded", "failed", "cancelled"]
TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class RunStatus(BaseModel):
    """A snapshot of a run: its state and how many members ended with each outcome."""

    run_id: str
    kind: str
    state: RunState
    total: int
    counts: dict[str, int]
    in_flight: int
    cancel_reason: str | None = None
    error: str | None = None
    group: str | None = None
    """The concurrency group the run shares a limit with, if it names one."""
    parent: str | None = None
    """The run whose member started this one (a child run), if any."""
    children: list[str] = Field(default_factory=list)
    """The child runs the run's members started (``AgentContext.map_reduce`` and the like)."""
    writes_refused: str | None = None
    """While the run has not ended and Redis refuses writes (it is full), Redis's own words
    (``command not allowed when used memory > 'maxmemory'.``): the run is paused, its members
    keep what they produced, and it resumes once Redis has room."""

    @property
    def finished_members(self) -> int:
        return sum(self.counts.values())
