"""What ``orchestrator watch`` knows of a run, kept from its event stream one event at a time.

Following a run of 10,000 members costs the same per event however many have run, and the
view never walks them all: only running members are kept (as many as run at once), the last
ended ones in a bounded queue, each member range of the strip as a few counters, durations as
a histogram, and the last events. The run's counts by outcome come from its hash (see
``watch_feed``): the stream is bounded, so it may have dropped events the view never saw.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from orchestrator.state.events import (
    AgentEnd,
    AgentStart,
    Event,
    ModelTurn,
    ParallelLoopStart,
    RunEnd,
    RunStart,
    ToolCallEnd,
    ToolCallStart,
)
from orchestrator.state.keys import FINAL_MEMBER

AgentEvent = AgentStart | AgentEnd | ModelTurn | ToolCallStart | ToolCallEnd
DURATION_BUCKETS: tuple[tuple[float, str], ...] = (
    (0.1, "<0.1s"),
    (1.0, "<1s"),
    (10.0, "<10s"),
    (60.0, "<1m"),
    (600.0, "<10m"),
    (math.inf, ">=10m"),
)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass
class Member:
    """One member as its events told it: ``key`` is its member id in the run's keys (item
    index, branch position, ``final``), ``label`` how the view names it."""

    key: str
    label: str
    name: str
    worker: str | None = None
    started: float | None = None
    ended: float | None = None
    outcome: str | None = None
    turns: int = 0
    tokens: int = 0
    tool: str = ""
    error: str | None = None

    def duration(self, now: float) -> float | None:
        """Seconds from its start to its end (or to ``now`` while it runs); None when its
        start was not seen."""
        if self.started is None:
            return None
        return max((self.ended if self.ended is not None else now) - self.started, 0.0)


class Strip:
    """Members by position in ``width`` cells of consecutive positions, each a few counters:
    running, ended ok, ended otherwise, errors. Updated in O(1) per event."""

    def __init__(self, total: int, width: int) -> None:
        self.total = max(total, 0)
        self.cells = max(min(self.total, width), 0)
        self.running = [0] * self.cells
        self.ok = [0] * self.cells
        self.other = [0] * self.cells
        self.errors = [0] * self.cells

    def cell(self, position: int) -> int | None:
        if not 0 <= position < self.total:
            return None
        return position * self.cells // self.total

    def size(self, cell: int) -> int:
        """How many positions cell ``cell`` covers."""
        end = _ceil_div((cell + 1) * self.total, self.cells)
        return end - _ceil_div(cell * self.total, self.cells)

    def glyph(self, cell: int) -> str:
        """One character for a cell: ``x`` an error, ``>`` running, ``#`` all ok, ``-`` all
        ended with some skipped or cancelled, ``+`` partly ended, ``.`` waiting."""
        ended = self.ok[cell] + self.other[cell]
        if self.errors[cell]:
            return "x"
        if self.running[cell]:
            return ">"
        if ended >= self.size(cell):
            return "#" if self.other[cell] == 0 else "-"
        return "+" if ended else "."

    def text(self) -> str:
        return "".join(self.glyph(cell) for cell in range(self.cells))


@dataclass
class WatchState:
    """The view's model of a run, fed with ``apply``. ``rows`` bounds the recently ended
    members kept, ``event_rows`` the events; ``missed`` counts events the bounded stream
    dropped before they were read."""

    run_id: str
    kind: str
    total: int
    rows: int = 10
    event_rows: int = 8
    strip_width: int = 48
    running: dict[str, Member] = field(default_factory=dict)
    started_at: float | None = None
    end_state: str | None = None
    seen: int = 0
    missed: int = 0
    lost_ends: int = 0

    def __post_init__(self) -> None:
        self.ended: deque[Member] = deque(maxlen=self.rows)
        self.events: deque[Event] = deque(maxlen=self.event_rows)
        self.durations = [0] * len(DURATION_BUCKETS)
        # One agent has no members to lay out: only its own row.
        self.strip = Strip(0 if self.kind == "agent" else self.total, self.strip_width)
        self._positions: dict[str, int] = {}
        self._session = ""

    def key_of(self, event: AgentEvent) -> str:
        """The member id an agent event is about, as the run's keys name it (a partial
        reducer, which runs inside the final member, as ``final.{level}.{chunk}``)."""
        if event.part is not None:
            return f"{FINAL_MEMBER}.{event.part}"
        if event.index is not None:
            return str(event.index)
        if event.loop_id is not None:
            position = self._positions.get(event.loop_id)
            return str(position) if position is not None else f"loop:{event.loop_id}"
        return FINAL_MEMBER

    def label(self, event: AgentEvent) -> str:
        """How the view names the member an agent event is about: ``#index``, a branch's
        loop id without its session (``brief.1``), ``final`` (or ``agent`` for one agent), a
        partial reducer ``final.{level}.{chunk}``."""
        if event.part is not None:
            return f"{FINAL_MEMBER}.{event.part}"
        if event.index is not None:
            return f"#{event.index}"
        if event.loop_id is not None:
            prefix = f"{self._session}."
            if self._session and event.loop_id.startswith(prefix):
                return event.loop_id[len(prefix) :]
            return event.loop_id
        return "agent" if self.kind == "agent" else FINAL_MEMBER

    def _cell(self, key: str) -> int | None:
        return self.strip.cell(int(key)) if key.isdigit() else None

    def apply(self, event: Event) -> None:
        """Take one event into the state."""
        self.seen += 1
        self.events.append(event)
        if isinstance(event, RunStart):
            self.started_at = event.ts
        elif isinstance(event, ParallelLoopStart):
            self._positions = {loop_id: i for i, loop_id in enumerate(event.loop_ids)}
            self._session = event.session_id
        elif isinstance(event, AgentStart):
            self._start(event)
        elif isinstance(event, AgentEnd):
            self._end(event)
        elif isinstance(event, ModelTurn | ToolCallStart | ToolCallEnd):
            member = self.running.get(self.key_of(event))
            if member is None:
                return
            if isinstance(event, ModelTurn):
                member.turns += 1
                member.tokens += event.usage.total_tokens
            else:
                member.tool = event.tool if isinstance(event, ToolCallStart) else ""
        elif isinstance(event, RunEnd):
            self.end_state = event.state

    def _start(self, event: AgentStart) -> None:
        key = self.key_of(event)
        # A redelivered member starts again: it moves to the end, with its new worker.
        again = self.running.pop(key, None)
        if again is None and (cell := self._cell(key)) is not None:
            self.strip.running[cell] += 1
        self.running[key] = Member(
            key, self.label(event), event.name, worker=event.worker, started=event.ts
        )

    def _end(self, event: AgentEnd) -> None:
        key = self.key_of(event)
        member = self.running.pop(key, None)
        cell = self._cell(key)
        if cell is not None:
            if member is not None:
                self.strip.running[cell] -= 1
            if event.outcome == "ok":
                self.strip.ok[cell] += 1
            else:
                self.strip.other[cell] += 1
                self.strip.errors[cell] += event.outcome == "error"
        if member is None:
            # Never started (skipped, cancelled while queued), or its start was not seen.
            member = Member(key, self.label(event), event.name)
        member.ended = event.ts
        member.outcome = event.outcome
        member.error = event.error
        member.tokens = event.usage.total_tokens or member.tokens
        member.tool = ""
        duration = member.duration(event.ts)
        if duration is not None:
            bucket = next(i for i, (bound, _) in enumerate(DURATION_BUCKETS) if duration < bound)
            self.durations[bucket] += 1
        self.ended.append(member)

    def drop_running(self, keys: list[str]) -> None:
        """Forget running members whose end the bounded stream dropped unread (their lease is
        gone): they ended, with an outcome the view cannot know."""
        for key in keys:
            member = self.running.pop(key, None)
            if member is None:
                continue
            self.lost_ends += 1
            if (cell := self._cell(key)) is not None:
                self.strip.running[cell] -= 1
