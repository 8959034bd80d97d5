"""Run state in Redis: creation, the admission window, leases, completion, cancel, final result.

Every state change is one Lua script (``lua/``), so coordinators and members on any number of
workers can race on the same run without over-admitting, double counting or losing an output.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, cast

import redis
from pydantic import TypeAdapter
from redis.exceptions import NoScriptError, ResponseError

from orchestrator.config.settings import Settings
from orchestrator.models import (
    OUTCOMES,
    AgentCheckpoint,
    AgentOutput,
    Message,
    Outcome,
    RunRecord,
    RunState,
    RunStatus,
)
from orchestrator.models.requests import RUN_REQUEST, RunRequest
from orchestrator.state.budget import ledger_fields
from orchestrator.state.connection import WRITES_REFUSED, refusal_message, write_refusal
from orchestrator.state.events import AgentStart, Event, RunEnd, RunStart
from orchestrator.state.keys import (
    ACTIVE_RUNS,
    CANCELS,
    RECENT_RUNS,
    RECENT_RUNS_KEPT,
    GroupKeys,
    group_tag,
    run_keys,
    run_tag,
)
from orchestrator.state.scripts import load_script, run_script

OUTPUT_PAGE = 500
"""Outputs read per round trip when paging through a run's outputs."""
GROUP_SCRIPTS = {"start_run": False, "complete_member": False, "end_members": False}
"""The run scripts that may admit members of the other runs of the run's concurrency group,
by name -> whether they also reach the runs with a member in flight (``sweep_group``)."""
GROUP_SCRIPTS["sweep_group"] = True
STALE_TRIES = 50
"""How often a grouped run's script is tried again when a run joined its group's rotation
between the read of the rotation and the script (see ``lua/group.lua``): each try follows a
fresh read, and a run joins once, so a few tries always do."""
_MESSAGES = TypeAdapter(list[Message])


@dataclass
class Admission:
    """Members the window let in, members the budget denied (index, reason), and the cancel
    reason if the run is being cancelled ('' otherwise). ``others``: what the same step let in
    of the other runs of the run's concurrency group (run id -> their admission), which the
    caller publishes as it does the run's own."""

    admitted: list[int] = field(default_factory=list)
    denied: list[tuple[int, str]] = field(default_factory=list)
    cancel: str = ""
    others: dict[str, Admission] = field(default_factory=dict)


@dataclass
class Claim:
    """What a starting member execution must do: ``run`` (with ``input``, the checkpoint an
    earlier execution left, if any, and ``remaining_s`` of the member's time limit), return the
    stored output (``done``), end as ``cancelled`` (``input`` is the reason), end as timed out
    (``timeout``: its limit passed in an earlier execution), or step aside (``busy``, or
    ``gone`` when the run no longer exists). ``taken_over``: an earlier execution claimed the
    member (its lease expired, or its worker died), and this one takes it over."""

    action: str
    input: str = ""
    checkpoint: AgentCheckpoint | None = None
    remaining_s: float = 0.0
    taken_over: bool = False


@dataclass
class Completion:
    """The result of storing a member's output. ``status`` is ``stored``; ``duplicate`` when
    the member had already ended (its first output is in ``output``); ``discarded`` when the
    execution no longer held the member's lease (its result is dropped; its calls' usage was
    counted as they settled);
    ``gone`` when the run no longer exists. ``drained``: a cancelled run has nothing left in
    flight, so its final step can run now."""

    status: str
    output: AgentOutput | None
    admission: Admission
    drained: bool = False

    @property
    def stored(self) -> bool:
        return self.status == "stored"


@dataclass
class PartialAdmission:
    """Whether a partial reducer of a tree reduce may run: ``run`` (counted as an agent, its
    start emitted), ``done`` (an earlier execution stored ``output``), ``denied`` or
    ``cancelled`` (with ``reason``), or ``lost`` (this execution no longer holds the final
    member)."""

    action: str
    reason: str = ""
    output: AgentOutput | None = None


@dataclass
class Renewal:
    """A heartbeat's answer for one held lease: ``ok``, ``lost`` (another execution holds it,
    or it ended) or ``gone`` (the run no longer exists), and the run's cancel reason."""

    status: str
    cancel: str


@dataclass
class Sweep:
    """The watchdog's findings for one run: members to publish again, members to end as
    cancelled (``abandon``, and the never-published ``unstarted`` range) or as timed out
    (``expire``) or as skipped (``denied`` by the budget, whose ending was lost), and
    ``action``, a lost step to redo: ``readmit``, ``regate``, ``refinish`` or ''."""

    state: str
    cancel: str
    republish: list[str]
    abandon: list[str]
    expire: list[str]
    unstarted: range
    action: str
    denied: list[tuple[str, str]]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _admission(
    admitted: list[int], denied: list[bytes | int], others: list[Any] | None = None
) -> Admission:
    """An admission from a script's reply: the run's admitted and (denied, reason) list, and
    the other runs' shares of its group as a flat list of (run id, admitted, denied)."""
    pairs = [(int(denied[i]), _text(denied[i + 1])) for i in range(0, len(denied), 2)]  # type: ignore[arg-type]
    shares = others or []
    return Admission(
        admitted=[int(i) for i in admitted],
        denied=pairs,
        others={
            _text(shares[i]): _admission(shares[i + 1], shares[i + 2])
            for i in range(0, len(shares), 3)
        },
    )


class RunStore:
    """Reads and changes runs in Redis.

    Parameters:
        client: a redis-py client of the state Redis.
        settings: lease length and event stream bound.
    """

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    @property
    def _lease_ms(self) -> int:
        return int(self.settings.lease_s * 1000)

    @property
    def _sweep_ms(self) -> int:
        return max(int(self.settings.sweep_s * 1000), 1)

    def _run(self, run_id: str, script: str, *args: object) -> Any:
        """Run a run script with every key of the run declared (and, for a script that may
        admit members of the run's concurrency group, the group's keys and its runs')."""
        if script in GROUP_SCRIPTS:
            group = self._group_of(run_id)
            if group is not None:
                return self._run_grouped(run_id, group, script, args)
        return run_script(self.client, script, run_keys(run_id).all, args)

    def _group_of(self, run_id: str) -> str | None:
        """The run's concurrency group, from its stored state (never from its request, which a
        worker of another version may be unable to read: the scripts read the group from the
        run's hash, and must be given its keys whatever the request says)."""
        return _cached_group(self.client, run_id)

    def _run_grouped(self, run_id: str, group: str, script: str, args: tuple[object, ...]) -> Any:
        """Run ``script`` declaring the group's keys and the keys of the group's runs that it
        may reach, read just before: those in the rotation (and, for a repair, those with a
        member in flight). A run that joined in between makes the script stop before it writes
        (a ``STALE`` error): it is read again and tried again."""
        group_keys = GroupKeys(group)
        with_inflight = GROUP_SCRIPTS[script]
        for _ in range(STALE_TRIES):
            with self.client.pipeline(transaction=False) as pipe:
                pipe.lrange(group_keys.rotation, 0, -1)
                if with_inflight:
                    pipe.smembers(group_keys.inflight)
                replies = pipe.execute()
            ids = {_text(other) for other in replies[0]}
            if with_inflight:
                ids.update(_text(slot).partition(":")[0] for slot in replies[1])
            ids.discard(run_id)
            keys = [*run_keys(run_id).all, *group_keys.all]
            for other in sorted(ids):
                other_keys = run_keys(other)
                keys += [other_keys.run, other_keys.leases, other_keys.holders]
                keys += [other_keys.budget, other_keys.denied]
            try:
                return run_script(self.client, script, keys, args)
            except ResponseError as error:
                if not str(error).startswith("STALE"):
                    raise
        raise RuntimeError(f"the rotation of group {group!r} kept changing")

    def now_ms(self) -> int:
        """Redis's clock in milliseconds (the clock every lease and deadline uses)."""
        seconds, micros = self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def create_run(
        self,
        run_id: str,
        request: RunRequest,
        items: list[str] | None = None,
        first_events: tuple[Event, ...] = (),
        traceparent: str | None = None,
    ) -> None:
        """Write a new pending run: its request, items (map-reduce), budget and first events,
        and ``traceparent``, the W3C trace context its spans hang from (when tracing is on).
        A run in a concurrency group must have an id made for it (``keys.new_run_id(group)``),
        which puts it on its group's shard of a Redis Cluster: ``ValueError`` otherwise."""
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
        self.client.zadd(ACTIVE_RUNS, {run_id: due})
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(keys.run, mapping=fields)
            if items:
                pipe.rpush(keys.items, *items)
            ledger = ledger_fields(request, self.settings.prices)
            pipe.hset(keys.budget, mapping=ledger)  # type: ignore[arg-type]
            for event in events:
                pipe.xadd(keys.events, {"e": event.model_dump_json()})
            pipe.execute()
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

    def exists(self, run_id: str) -> bool:
        return bool(self.client.exists(run_keys(run_id).run))

    def request(self, run_id: str) -> RunRequest:
        """The run's validated request (cached: a request never changes)."""
        return _cached_request(self.client, run_id)

    def traceparent(self, run_id: str) -> str | None:
        """The W3C traceparent of the run's trace, or None when it has none (yet)."""
        raw = self.client.hget(run_keys(run_id).run, "traceparent")
        return _text(raw) if raw else None

    def adopt_traceparent(self, run_id: str, traceparent: str) -> str | None:
        """Give the run ``traceparent`` unless it has one; returns the one it keeps (None when
        the run no longer exists)."""
        kept = self._run(run_id, "adopt_trace", traceparent)
        return _text(kept) or None

    def start(self, run_id: str, node: str) -> Admission:
        """Admission: the run becomes ``running`` and its first window is admitted, to be
        published by worker ``node`` (in a concurrency group: as far as the group has room,
        which may let in members of its other runs too)."""
        admitted, denied, cancel, others = self._run(run_id, "start_run", node, self._lease_ms)
        admission = _admission(admitted, denied, others)
        admission.cancel = _text(cancel)
        return admission

    def claim(
        self,
        run_id: str,
        member: str,
        token: str,
        timeout_s: float,
        event: AgentStart,
        gone_holder: str = "",
    ) -> Claim:
        """Take the lease of a member about to execute (see ``claim_member.lua``); its time
        limit ``timeout_s`` counts from its first claim. A ``busy`` claim's ``input`` is the
        execution that holds the member, when one does; ``gone_holder``: that execution, whose
        process is known to be gone (``workers/execution/liveness.py``), so that its live lease is
        taken
        over now (only if it still holds the member)."""
        timeout_ms = int(timeout_s * 1000)
        reply = self._run(
            run_id, "claim_member", member, token, self._lease_ms, timeout_ms,
            event.model_dump_json(), gone_holder,
        )  # fmt: skip
        action, *rest = reply
        if _text(action) != "run":
            return Claim(action=_text(action), input=_text(rest[0]) if rest else "")
        checkpoint = AgentCheckpoint.model_validate_json(rest[1]) if rest[1] else None
        return Claim(
            action="run",
            input=_text(rest[0]),
            checkpoint=checkpoint,
            remaining_s=int(rest[2]) / 1000,
            taken_over=_text(rest[3]) == "1",
        )

    def save_checkpoint(
        self, run_id: str, member: str, token: str, checkpoint: AgentCheckpoint
    ) -> bool:
        """Keep a running member's state after a completed turn, for a redelivery to resume;
        False when this execution no longer holds the member (nothing is written)."""
        kept = self._run(run_id, "save_checkpoint", member, token, checkpoint.model_dump_json())
        return bool(kept)

    def complete(
        self,
        run_id: str,
        member: str,
        output: AgentOutput,
        events: list[Event],
        *,
        node: str,
        token: str = "",
        messages: list[Message] | None = None,
        record: RunRecord | None = None,
        calls: tuple[str, int] | None = None,
    ) -> Completion:
        """Store a member's output (and the messages it added, and its record) once, emit
        ``events`` with it and admit the next members, which worker ``node`` publishes (its
        calls settled their usage in the budget as they ended). ``token`` is the execution's
        lease token ('' for a member that never ran): an execution that lost its lease has its
        result discarded. ``calls``: the execution's budget attempt and how many calls it
        reserved (``CallBudget.made``); those whose settle was lost are charged at their
        reservation."""
        attempt, count = calls or ("", 0)
        reply = self._run(
            run_id,
            "complete_member",
            member,
            node,
            token,
            self._lease_ms,
            output.model_dump_json(),
            output.outcome,
            _MESSAGES.dump_json(messages).decode() if messages else "",
            record.model_dump_json() if record else "",
            attempt,
            count,
            CANCELS,
            *(event.model_dump_json() for event in events),
        )
        status = int(reply[0])
        if status == 0:
            stored = AgentOutput.model_validate_json(reply[1])
            return Completion(status="duplicate", output=stored, admission=Admission())
        if status in (2, 3):
            gone = "discarded" if status == 2 else "gone"
            return Completion(status=gone, output=None, admission=Admission())
        return Completion(
            status="stored",
            output=output,
            admission=_admission(reply[1], reply[2], reply[4]),
            drained=bool(reply[3]),
        )

    def end_members(
        self,
        run_id: str,
        outcome: Outcome,
        ended: list[tuple[str, str, str]],
        advance_to: int | None = None,
        *,
        node: str,
    ) -> tuple[int, bool, Admission]:
        """End members that never ran, in one call: (member, output JSON, AgentEnd JSON)
        each; members already ended keep their output. ``advance_to`` marks a never-published
        range as handled up to that index. Returns how many were ended, whether the run is
        now drained (see ``Completion``), and what the group slots they freed let in of the
        other runs of the run's concurrency group, which worker ``node`` publishes."""
        args = [value for triple in ended for value in triple]
        advance = "" if advance_to is None else advance_to
        count, drained, others = self._run(
            run_id, "end_members", outcome, advance, node, self._lease_ms, *args
        )
        return int(count), bool(drained), _admission([], [], others)

    def renew(self, leases: list[tuple[str, str, str]]) -> list[Renewal]:
        """Renew the leases ``(run_id, member, holder)`` in one round trip (see
        ``renew_lease.lua``)."""
        try:
            replies = self._renew(leases)
        except NoScriptError:
            # The server lacked the script: a shard of a Redis Cluster (a cluster pipeline
            # cannot load it as it executes, see scripts.py), or a new master after a failover
            # or a restart (the pipeline checked for it on the old one; redis-py retries the
            # send, not the check). Renewing twice does no harm.
            load_script(self.client, "renew_lease")
            replies = self._renew(leases)
        return [Renewal(_text(status), _text(cancel)) for status, cancel in replies]

    def _renew(self, leases: list[tuple[str, str, str]]) -> list[Any]:
        with self.client.pipeline(transaction=False) as pipe:
            for run_id, member, holder in leases:
                args = [member, holder, self._lease_ms]
                run_script(pipe, "renew_lease", run_keys(run_id).all, args)
            return pipe.execute()

    def sweep(self, run_id: str, node: str) -> Sweep:
        """Apply the deadline, take over expired leases and end what a cancel abandons (see
        ``sweep_run.lua``); worker ``node`` publishes what is handed back."""
        args = [self._lease_ms, node, CANCELS, self._sweep_ms]
        reply = run_script(self.client, "sweep_run", run_keys(run_id).all, args)
        state, cancel, republish, abandon, expire, first, last, action, denied, sweep_at = reply
        if sweep_at:
            # Its deadline comes before its next sweep: it is swept then, so that it ends on time.
            self.client.zadd(ACTIVE_RUNS, {run_id: int(sweep_at)}, xx=True, lt=True)
        pairs = [(_text(denied[i]), _text(denied[i + 1])) for i in range(0, len(denied), 2)]
        return Sweep(
            state=_text(state),
            cancel=_text(cancel),
            republish=[_text(m) for m in republish],
            abandon=[_text(m) for m in abandon],
            expire=[_text(m) for m in expire],
            unstarted=range(int(first), int(last)),
            action=_text(action),
            denied=pairs,
        )

    def repair_group(self, run_id: str, node: str) -> Admission:
        """The watchdog's repair of the run's concurrency group, at most once per lease across
        the group's runs: slots left by members of a deleted or expired run are freed and the
        group's free slots filled, to be published by worker ``node`` (see
        ``sweep_group.lua``)."""
        _, admitted, denied, others = self._run(run_id, "sweep_group", node, self._lease_ms)
        return _admission(admitted, denied, others)

    def request_cancel(self, run_id: str, reason: str) -> bool:
        """Flag the run as cancelled (unless a deadline or an earlier cancel did); True while
        the run has not ended, False when it had or does not exist."""
        return bool(self._run(run_id, "request_cancel", reason, CANCELS))

    def gate_final(
        self, run_id: str, node: str, prompt: str, agent: bool = True
    ) -> tuple[str, str]:
        """Budget-gate the run's final agent: (``admitted`` | ``denied`` | ``cancelled`` |
        ``gone``, reason); ``prompt`` is what it will be given ('' for one that builds its own,
        a map-reduce's reducer), ``node`` publishes it. ``agent=False``: the final step is a
        reducer function, no agent of the budget (only a cancel stops it)."""
        counts = "1" if agent else "0"
        verdict, *rest = self._run(run_id, "gate_final", node, prompt, self._lease_ms, counts)
        return _text(verdict), _text(rest[0]) if rest else ""

    def admit_partial(
        self, run_id: str, part: str, token: str, event: AgentStart
    ) -> PartialAdmission:
        """Let partial reducer ``part`` (``level.chunk``) of the final member held by ``token``
        run, counting it once as an agent of the budget (see ``admit_partial.lua``)."""
        action, *rest = self._run(run_id, "admit_partial", part, token, event.model_dump_json())
        action = _text(action)
        if action == "done":
            return PartialAdmission(action, output=AgentOutput.model_validate_json(rest[0]))
        return PartialAdmission(action, reason=_text(rest[0]) if rest else "")

    def save_partial(
        self, run_id: str, part: str, token: str, output: AgentOutput, events: list[Event]
    ) -> bool:
        """Keep partial reducer ``part``'s output once and emit ``events`` with it; False when
        ``token`` no longer holds the final member (nothing is written) or it was kept."""
        emitted = [event.model_dump_json() for event in events]
        kept = self._run(run_id, "save_partial", part, token, output.model_dump_json(), *emitted)
        return bool(kept)

    def emit(self, run_id: str, event: Event) -> None:
        """Append one event to the run's stream (nothing when the run no longer exists)."""
        self._run(run_id, "emit_event", event.model_dump_json())

    def requeue_queued(self, run_id: str, node: str) -> list[str]:
        """The run's members that wait in the queue, handed to worker ``node`` to publish
        again under an admission lease (after a change of Redis server, which may have lost
        their messages; see ``requeue_queued.lua``)."""
        members = self._run(run_id, "requeue_queued", node, self._lease_ms)
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    def hand_back(self, run_id: str, node: str, members: list[str]) -> list[str]:
        """Put ``members``, which a worker took but will not run, back under an admission
        lease of worker ``node`` that expires, before it publishes them again: should that
        publish fail, the watchdog publishes them when the lease expires. Returns the members
        to publish (those not yet claimed by an execution nor ended; see ``hand_back.lua``)."""
        handed = self._run(run_id, "hand_back", node, self._lease_ms, *members)
        return [_text(member) for member in handed]

    def confirm_published(self, run_id: str, node: str, members: list[str]) -> None:
        """Worker ``node`` published ``members``: they wait in the queue without a lease to
        expire from now on (see ``confirm_published.lua``)."""
        self._run(run_id, "confirm_published", node, *members)

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
        # the run's next sweep finds it ended and drops it.
        self.client.zrem(ACTIVE_RUNS, run_id)
        return bool(ended)

    def outputs(self, run_id: str) -> list[AgentOutput]:
        """The stored member outputs, in member order (members not yet ended are missing)."""
        return [output for _, output in self.indexed_outputs(run_id)]

    def indexed_outputs(
        self, run_id: str, start: int = 0, stop: int | None = None, page_size: int = OUTPUT_PAGE
    ) -> Iterator[tuple[int, AgentOutput]]:
        """(index, output) of members ``start`` to ``stop - 1`` (by default to the last
        member) in member order, skipping members not yet ended. Read ``page_size`` at a time
        and parsed one by one, so that a run of any size is never one reply or one document.
        Raises ``ValueError`` at once for a negative bound or a page size below 1."""
        if start < 0 or (stop is not None and stop < 0):
            raise ValueError("start and stop must not be negative")
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        if stop is None:
            total = self.client.hget(run_keys(run_id).run, "total")
            stop = int(total) if total else 0
        return self._output_pages(run_keys(run_id).outputs, range(start, stop), page_size)

    def _output_pages(
        self, key: str, indices: range, page_size: int
    ) -> Iterator[tuple[int, AgentOutput]]:
        for first in range(0, len(indices), page_size):
            page = indices[first : first + page_size]
            raws = self.client.hmget(key, [str(index) for index in page])
            for index, raw in zip(page, raws, strict=True):
                if raw is not None:
                    yield index, AgentOutput.model_validate_json(raw)

    def messages(self, run_id: str, member: str) -> list[Message]:
        """The messages member ``member`` added to its context (empty if none were kept)."""
        raw = self.client.hget(run_keys(run_id).messages, member)
        return _MESSAGES.validate_json(raw) if raw else []

    def record(self, run_id: str, member: str) -> RunRecord | None:
        """The stored record of member ``member`` (kept for single runs only: the others' go
        to the learners alone)."""
        raw = self.client.hget(run_keys(run_id).records, member)
        return RunRecord.model_validate_json(raw) if raw else None

    def stored_output(self, run_id: str, member: str) -> AgentOutput | None:
        raw = self.client.hget(run_keys(run_id).outputs, member)
        return AgentOutput.model_validate_json(raw) if raw else None

    def status(self, run_id: str) -> RunStatus | None:
        """A snapshot of the run, or None when no such run exists."""
        keys = run_keys(run_id)
        try:
            fields, in_flight = self._read_status(keys.run, keys.leases, transaction=True)
        except WRITES_REFUSED:
            # A full Redis refuses a transaction, even of reads: the two reads then come apart.
            fields, in_flight = self._read_status(keys.run, keys.leases, transaction=False)
        if b"kind" not in fields:
            return None  # no run, or the remains of one that a flush or a lost Redis took
        get = {_text(k): _text(v) for k, v in fields.items() if k != b"result"}
        ended = get["state"] not in ("pending", "running")
        return RunStatus(
            run_id=run_id,
            kind=get["kind"],
            state=get["state"],  # type: ignore[arg-type]
            total=int(get["total"]),
            counts={outcome: int(get.get(f"n_{outcome}", 0)) for outcome in OUTCOMES},
            in_flight=in_flight,
            cancel_reason=get.get("cancel") or None,
            error=get.get("error") or None,
            group=get.get("group") or None,
            writes_refused=None if ended else self._writes_refused(run_id),
        )

    def _read_status(self, run: str, leases: str, transaction: bool) -> list[Any]:
        with self.client.pipeline(transaction=transaction) as pipe:
            pipe.hgetall(run)
            pipe.zcard(leases)
            replies: list[Any] = pipe.execute()
            return replies

    def _writes_refused(self, run_id: str) -> str | None:
        """Redis's words if it refuses writes on the run's shard (it is full) now, else None:
        asked with a write that writes nothing (SET XX of a key that does not exist)."""
        try:
            self.client.set(f"{run_keys(run_id).run}:write-probe", "", xx=True)
        except redis.ResponseError as error:  # NOREPLICAS, READONLY...: no reason to fail
            refused = write_refusal(error)
            return None if refused is None else refusal_message(refused)
        return None

    def ending_json(self, run_id: str) -> str | None:
        """What the run's end stored for its result (see ``finalize``), None when nothing."""
        raw = self.client.hget(run_keys(run_id).run, "result")
        return _text(raw) if raw else None

    def active_runs(self) -> list[str]:
        run_ids = cast(list[bytes], self.client.zrange(ACTIVE_RUNS, 0, -1))
        return [_text(run_id) for run_id in run_ids]

    def claim_sweeps(self, limit: int, interval_s: float) -> list[str]:
        """Take up to ``limit`` runs whose sweep is due, their next sweep pushed ``interval_s``
        on (see ``claim_sweeps.lua``): no other watchdog takes them within the interval."""
        interval_ms = max(int(interval_s * 1000), 1)
        due = run_script(self.client, "claim_sweeps", [ACTIVE_RUNS], [limit, interval_ms], False)
        return [_text(run_id) for run_id in due]

    def next_sweep_in_s(self) -> float | None:
        """Seconds until the earliest sweep of any active run is due (0 when one is due now),
        or None when no run is active."""
        wait_ms = run_script(self.client, "next_sweep", [ACTIVE_RUNS], [], common=False)
        return None if int(wait_ms) < 0 else int(wait_ms) / 1000

    def forget_active(self, run_id: str) -> None:
        self.client.zrem(ACTIVE_RUNS, run_id)


@lru_cache(maxsize=4096)
def _stored_group(client: redis.Redis, run_id: str) -> tuple[str | None]:
    fields = cast(list[bytes | None], client.hmget(run_keys(run_id).run, ["id", "group"]))
    if fields[0] is None:
        raise LookupError(run_id)  # not cached: a run not yet written may still be
    return (_text(fields[1]) if fields[1] is not None else None,)


def _cached_group(client: redis.Redis, run_id: str) -> str | None:
    """A run's group as stored when it was created (cached: it never changes); None for a run
    without one, or one that does not exist (its scripts find that out)."""
    try:
        return _stored_group(client, run_id)[0]
    except LookupError:
        return None


@lru_cache(maxsize=256)
def _cached_request(client: redis.Redis, run_id: str) -> RunRequest:
    raw = client.hget(run_keys(run_id).run, "request")
    if raw is None:
        raise LookupError(f"run {run_id} has no request")
    return RUN_REQUEST.validate_json(raw)
