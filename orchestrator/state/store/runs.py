"""A run as a whole: its creation, a failed submit's discard, its trace, its events, its
cancel, and its end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from orchestrator.models import RunState
from orchestrator.models.requests import RunRequest
from orchestrator.state.budget import ledger_fields
from orchestrator.state.children import Lineage
from orchestrator.state.events import Event, RunEnd, RunStart
from orchestrator.state.keys import (
    ACTIVE_RUNS,
    CANCELS,
    RECENT_RUNS,
    RECENT_RUNS_KEPT,
    group_tag,
    run_keys,
    run_tag,
)
from orchestrator.state.scripts import run_script
from orchestrator.state.store.replies import text
from orchestrator.state.store.run_scripts import RunScripts

WRITE_GRACE_MS = 60_000
"""How long a run being created is kept from being swept, should its creator die before it
sets the run's first sweep (a run never written is then dropped by that sweep)."""


class RunLifecycle(RunScripts):
    """Creates runs, flags their cancel and ends them."""

    def create_run(
        self,
        run_id: str,
        request: RunRequest,
        items: list[str] | None = None,
        first_events: tuple[Event, ...] = (),
        traceparent: str | None = None,
        lineage: Lineage | None = None,
    ) -> None:
        """Write a new pending run: its request, items (map-reduce), budget and first events,
        and ``traceparent``, the W3C trace context its spans hang from (when tracing is on).
        A run in a concurrency group must have an id made for it (``keys.new_run_id(group)``),
        which puts it on its group's shard of a Redis Cluster: ``ValueError`` otherwise.
        ``lineage``: a child run's parent and ancestors' ledgers (``state/children.py``)."""
        if request.group is not None and run_tag(run_id) != group_tag(request.group):
            raise ValueError(f"run {run_id} was not given an id of group {request.group!r}")
        keys = run_keys(run_id)
        total = request.member_count
        fields: dict[Any, str | int] = {
            "id": run_id,
            "kind": request.kind,
            "state": "pending",
            "request": request.model_dump_json(),
            "total": total,
            "max_concurrent": request.max_concurrent,
            "next": 0,
            "events_maxlen": self.settings.events_maxlen,
            "created_ms": self.now_ms(),
        }
        fields["last_change_ms"] = fields["created_ms"]
        if traceparent:
            fields["traceparent"] = traceparent
        if request.group is not None:
            fields["group"] = request.group
        ledger: dict[str, str | int] = {**ledger_fields(request, self.settings.prices)}
        if lineage is not None:
            fields |= lineage.run_fields()
            ledger |= lineage.ledger_fields()
        if request.deadline_s is not None:
            fields["deadline_ms"] = int(fields["created_ms"]) + int(request.deadline_s * 1000)
        events = (RunStart(run_id=run_id, kind=request.kind, total=total), *first_events)
        # Three steps, since on a Redis Cluster the run, the active runs and the recent runs
        # live on different shards. The run is made active first: should this process die
        # before the run is written, its sweep finds no run and drops it; the other way round,
        # a run written but never active would be swept by no one. Its first sweep is due one
        # interval on (or at its deadline if that comes first), long after the run is written.
        first_sweep = int(fields["created_ms"]) + self._sweep_ms
        due = min(first_sweep, int(fields.get("deadline_ms", first_sweep)))
        # Not due before the run is written, though: a sweep that came due while a big run's
        # keys are written (100,000 items take longer than a short interval) would find no
        # run and drop it, and its deadline would never apply. Its due time is set once written.
        self.client.zadd(ACTIVE_RUNS, {run_id: int(fields["created_ms"]) + WRITE_GRACE_MS})
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(keys.run, mapping=fields)
            if items:
                pipe.rpush(keys.items, *items)
            pipe.hset(keys.budget, mapping=ledger)  # type: ignore[arg-type]
            for event in events:
                pipe.xadd(keys.events, {"e": event.model_dump_json()})
            pipe.execute()
        self.client.zadd(ACTIVE_RUNS, {run_id: due}, xx=True)
        # The index of recent runs, bounded: the newest RECENT_RUNS_KEPT by creation time.
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zadd(RECENT_RUNS, {run_id: int(fields["created_ms"])})
            pipe.zremrangebyrank(RECENT_RUNS, 0, -RECENT_RUNS_KEPT - 1)
            pipe.execute()

    def discard(self, run_id: str) -> None:
        """Delete what a submit that failed wrote of run ``run_id``, unless a sweep admitted it
        meanwhile (see ``discard_run.lua``: it runs even while Redis refuses writes)."""
        if run_script(self.client, "discard_run", run_keys(run_id).all, [], common=False):
            self.client.zrem(ACTIVE_RUNS, run_id)
            self.client.zrem(RECENT_RUNS, run_id)

    def adopt_traceparent(self, run_id: str, traceparent: str) -> str | None:
        """Give the run ``traceparent`` unless it has one; returns the one it keeps (None when
        the run no longer exists)."""
        kept = self._run(run_id, "adopt_trace", traceparent)
        return text(kept) or None

    def emit(self, run_id: str, event: Event) -> None:
        """Append one event to the run's stream (nothing when the run no longer exists)."""
        self._run(run_id, "emit_event", event.model_dump_json())

    def request_cancel(self, run_id: str, reason: str) -> bool:
        """Flag the run as cancelled (unless a deadline or an earlier cancel did); True while
        the run has not ended, False when it had or does not exist."""
        return bool(self._run(run_id, "request_cancel", reason, CANCELS))

    def cancel_announcements(self) -> Iterator[tuple[str, str]]:
        """(run id, reason) of each cancel as it is announced (by a user's cancel or a run's
        deadline, see ``request_cancel.lua`` and ``flag_deadline`` in ``common.lua``), for
        ever; raises when the connection to Redis is lost."""
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call, unused-ignore]
        pubsub.subscribe(CANCELS)
        for message in pubsub.listen():  # type: ignore[no-untyped-call, unused-ignore]
            run_id, _, reason = message["data"].decode().partition("\n")
            yield run_id, reason

    def finalize(
        self,
        run_id: str,
        state: RunState,
        ending_json: str,
        error: str = "",
        events: tuple[Event, ...] = (),
    ) -> bool:
        """End the run once, emitting ``events`` and then ``RunEnd``; False when it had already
        ended. ``ending_json`` is what its result adds to what the run keeps (see
        ``orchestrator/state/results.py``), '' for a run without a result. What the run keeps
        expires ``result_ttl_s`` later; what only a running run needs goes at once."""
        end = RunEnd(run_id=run_id, state=state)
        emitted = [event.model_dump_json() for event in (*events, end)]
        ended = run_script(
            self.client,
            "finalize_run",
            run_keys(run_id).all,
            [state, ending_json, error, self.settings.result_ttl_s, *emitted],
        )
        # Not in the script: the active runs may live on another shard. Should this be lost,
        # the run's next sweep finds it ended and drops it. A big run stays one more sweep,
        # ``ended_events_keep_s`` on, which trims its event stream (``trim_ended_events``).
        if ended == 2:
            keep_ms = int(self.settings.ended_events_keep_s * 1000)
            self.client.zadd(ACTIVE_RUNS, {run_id: self.now_ms() + keep_ms})
        else:
            self.client.zrem(ACTIVE_RUNS, run_id)
        return bool(ended)

    def trim_ended_events(self, run_id: str) -> bool:
        """Trim the event stream of a run of 1,000 members or more that ended
        ``ended_events_keep_s`` ago to one event for every 4 members, its end last (see
        ``trim_events.lua``). True when that time is still to come: the run is then kept due
        for a sweep at that time; False when there is nothing more to do."""
        keep_ms = int(self.settings.ended_events_keep_s * 1000)
        due = int(self._run(run_id, "trim_events", keep_ms) or 0)
        if due:
            self.client.zadd(ACTIVE_RUNS, {run_id: due})
        return bool(due)
