"""Recent runs, for ``orchestrator runs``: the index of run ids by creation time
(``RECENT_RUNS``, written by ``RunStore.create_run``) and a summary of each run, read from a
few fields of its hash (never its request or result, which may be large)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis

from orchestrator.models import OUTCOMES
from orchestrator.state.keys import RECENT_RUNS, RunKeys

_FIELDS = ("kind", "state", "total", *(f"n_{outcome}" for outcome in OUTCOMES))
_TIMES = ("created_ms", "ended_ms")


@dataclass(frozen=True)
class RunSummary:
    """One run in the listing: its counts by outcome, and its age from creation (Redis's
    clock, the one the run's own times use)."""

    run_id: str
    kind: str
    state: str
    total: int
    counts: dict[str, int]
    created_ms: int
    ended_ms: int | None
    age_s: float

    @property
    def ended_members(self) -> int:
        return sum(self.counts.values())

    def as_json(self) -> dict[str, Any]:
        """The summary as a JSON-ready mapping."""
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "state": self.state,
            "total": self.total,
            "counts": self.counts,
            "created_ms": self.created_ms,
            "ended_ms": self.ended_ms,
            "age_s": round(self.age_s, 3),
        }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _summary(run_id: str, values: list[Any], now_ms: int) -> RunSummary | None:
    got = dict(zip((*_FIELDS, *_TIMES), values, strict=True))
    if got["kind"] is None or got["created_ms"] is None:
        return None  # the run's keys expired (or were flushed): only its index entry is left
    created = int(got["created_ms"])
    return RunSummary(
        run_id=run_id,
        kind=_text(got["kind"]),
        state=_text(got["state"] or b""),
        total=int(got["total"] or 0),
        counts={outcome: int(got[f"n_{outcome}"] or 0) for outcome in OUTCOMES},
        created_ms=created,
        ended_ms=int(got["ended_ms"]) if got["ended_ms"] is not None else None,
        age_s=max(now_ms - created, 0) / 1000,
    )


def recent_runs(client: redis.Redis, limit: int = 20) -> list[RunSummary]:
    """The newest ``limit`` runs that still exist, newest first. Index entries of runs whose
    keys expired are removed as they are met, so the listing never shows a run it cannot
    read and the index does not keep what no longer exists."""
    seconds, micros = client.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    found: dict[str, RunSummary] = {}
    start = 0
    page = max(limit, 50)
    while len(found) < limit:
        entries = cast(list[bytes], client.zrevrange(RECENT_RUNS, start, start + page - 1))
        if not entries:
            break
        run_ids = [_text(entry) for entry in entries]
        with client.pipeline(transaction=False) as pipe:
            for run_id in run_ids:
                pipe.hmget(RunKeys(run_id).run, [*_FIELDS, *_TIMES])
            replies = pipe.execute()
        gone = []
        for run_id, values in zip(run_ids, replies, strict=True):
            summary = _summary(run_id, values, now_ms)
            if summary is None:
                gone.append(run_id)
            elif len(found) < limit:
                # A run created while we page shifts the ranks by one: the dict drops a repeat.
                found.setdefault(run_id, summary)
        if gone:
            client.zrem(RECENT_RUNS, *gone)
        # Removing the expired ids moved the following ones up by as many ranks.
        start += len(run_ids) - len(gone)
    return list(found.values())


def age_text(seconds: float) -> str:
    """A short age: ``42s``, ``5m``, ``3h``, ``2d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
