"""Reads a watched run from Redis: its events after the last one read, and a snapshot of its
state, counts and budget. Each read costs the same however large the run is: a batch of the
stream, a few fields of the run's hash, the ledger.

The stream is bounded (``events_maxlen``): a watcher that falls far behind, or attaches to a
long run, finds its oldest events gone. ``XINFO STREAM`` counts every entry ever added, so the
number dropped before they were read is known exactly; after such a gap, running members whose
end may have been dropped are checked against the run's leases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from pydantic import ValidationError
from redis.client import Pipeline

from orchestrator.cli.watch_state import WatchState
from orchestrator.errors import RunNotFoundError
from orchestrator.models import OUTCOMES, TERMINAL_STATES
from orchestrator.state.budget import Ledger, RunBudget
from orchestrator.state.connection import WRITES_REFUSED
from orchestrator.state.events import parse_event
from orchestrator.state.keys import FINAL_MEMBER, RunKeys

_FIELDS = ("kind", "state", "total", "created_ms", "ended_ms", "cancel", "error")
_COUNTS = tuple(f"n_{outcome}" for outcome in OUTCOMES)


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def _reads(client: redis.Redis, queue: Callable[[Pipeline], object]) -> list[Any]:
    """The replies of the reads ``queue`` puts on a pipeline, run as one transaction; a full
    Redis refuses a transaction even of reads, and they are then sent without one."""
    try:
        with client.pipeline(transaction=True) as pipe:
            queue(pipe)
            replies: list[Any] = pipe.execute()
    except WRITES_REFUSED:
        with client.pipeline(transaction=False) as pipe:
            queue(pipe)
            replies = pipe.execute()
    return replies


@dataclass(frozen=True)
class Snapshot:
    """The run now: state, counts by outcome, members in flight, times (ms, Redis's clock)
    and budget."""

    run_id: str
    kind: str
    state: str
    total: int
    counts: dict[str, int]
    in_flight: int
    created_ms: int
    ended_ms: int | None
    now_ms: int
    cancel: str
    error: str
    ledger: Ledger

    @property
    def ended_members(self) -> int:
        return sum(self.counts.values())

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def elapsed_s(self) -> float:
        end = self.ended_ms if self.ended_ms is not None else self.now_ms
        return max(end - self.created_ms, 0) / 1000


class RunFeed:
    """The Redis side of watching run ``run_id``; ``batch`` bounds the events read at once."""

    def __init__(self, client: redis.Redis, run_id: str, batch: int = 1000) -> None:
        self.client = client
        self.run_id = run_id
        self.keys = RunKeys(run_id)
        self.batch = batch
        self.cursor = "0-0"
        self._ordinal = 0  # how many entries the stream had added up to the cursor
        self._gap = False

    def snapshot(self) -> Snapshot:
        """The run's state now; ``RunNotFoundError`` once its keys are gone."""
        values, in_flight, (seconds, micros) = _reads(
            self.client,
            lambda pipe: (
                pipe.hmget(self.keys.run, [*_FIELDS, *_COUNTS]),
                pipe.zcard(self.keys.leases),
                pipe.time(),
            ),
        )
        got = dict(zip((*_FIELDS, *_COUNTS), values, strict=True))
        if got["kind"] is None:
            raise RunNotFoundError(f"no run with id {self.run_id!r}")
        return Snapshot(
            run_id=self.run_id,
            kind=_text(got["kind"]),
            state=_text(got["state"]),
            total=int(got["total"] or 0),
            counts={outcome: int(got[f"n_{outcome}"] or 0) for outcome in OUTCOMES},
            in_flight=int(in_flight),
            created_ms=int(got["created_ms"] or 0),
            ended_ms=int(got["ended_ms"]) if got["ended_ms"] is not None else None,
            now_ms=int(seconds) * 1000 + int(micros) // 1000,
            cancel=_text(got["cancel"]),
            error=_text(got["error"]),
            ledger=RunBudget(self.client, self.run_id).ledger(),
        )

    def read(self, state: WatchState, block_ms: int | None = None) -> int:
        """Apply the next batch of events to ``state``; with ``block_ms``, wait up to that
        long for one when none is there. Returns how many were applied."""
        applied = self._read_batch(state)
        if applied or not block_ms:
            return applied
        # Waits outside the transaction (a MULTI cannot block), then reads under it.
        self.client.xread({self.keys.events: self.cursor}, count=1, block=block_ms)
        return self._read_batch(state)

    def _read_batch(self, state: WatchState) -> int:
        # Only member ids the leases know (item indexes, branch positions, ``final``).
        check = [k for k in state.running if k.isdigit() or k == FINAL_MEMBER] if self._gap else []
        try:
            replies = _reads(
                self.client,
                lambda pipe: (
                    pipe.xread({self.keys.events: self.cursor}, count=self.batch),
                    pipe.xinfo_stream(self.keys.events),
                    pipe.zmscore(self.keys.leases, check) if check else None,
                ),
            )
        except redis.ResponseError as error:
            if "no such key" in str(error).lower():
                raise RunNotFoundError(f"no run with id {self.run_id!r}") from None
            raise
        entries: list[tuple[bytes, dict[bytes, bytes]]] = replies[0][0][1] if replies[0] else []
        self._count_missed(state, replies[1], len(entries))
        for entry_id, fields in entries:
            self.cursor = _text(entry_id)
            try:
                event = parse_event(fields[b"e"])
            except (KeyError, ValidationError):
                continue  # an event this version does not know: the view goes on without it
            state.apply(event)
        if check and len(entries) < self.batch:
            # Caught up in the same transaction that read the leases: a member still running
            # here without a lease ended, and its AgentEnd was among the dropped events.
            scores = replies[2]
            state.drop_running(
                [key for key, score in zip(check, scores, strict=True) if score is None]
            )
            self._gap = False
        return len(entries)

    def _count_missed(self, state: WatchState, info: dict[str, Any], read: int) -> None:
        added = info.get("entries-added")
        if added is None or not read:
            return  # a Redis before 7.0 does not count them
        first_kept = int(added) - int(info["length"]) + 1
        first_read = max(self._ordinal + 1, first_kept)
        missed = first_read - (self._ordinal + 1)
        if missed:
            state.missed += missed
            self._gap = True
        self._ordinal = first_read + read - 1
