"""The worker side of the run-state model (``tests/run_state/test_run_state_model.py``): what
``workers/coordination/steps.py`` and ``advance.py``, ``member.py`` and ``lanes.py`` do, as
``RunStore`` calls. The broker is a list of deliveries (run, member, and the token of the attempt
a retried delivery takes over). Live workers' leases are long (renewed, they never expire here);
a lease that passes (the dead's, what a lost step left) is written for 1 ms and the model waits
until Redis's clock is past it: every expiry is deterministic. Sweeps use that 1 ms lease (a
lease passed since the last change)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from uuid import uuid4

import redis

from orchestrator.config.settings import Settings
from orchestrator.models import AgentOutput, Outcome, RunState
from orchestrator.models.requests import MapReduceRequest
from orchestrator.state.budget import RunBudget
from orchestrator.state.events import AgentEnd, AgentStart
from orchestrator.state.keys import RunKeys
from orchestrator.state.store import Admission, RunStore, Sweep, _cached_request

NODE = "w1"
FINAL = "final"
LIVE = ("pending", "running")
QUEUED = 4e15  # the score of a published member waiting in the queue (lua/common.lua)
UNREADABLE = json.dumps({"kind": "map_reduce", "task": "t", "from_a_newer_client": True})
UNREADABLE_REASON = "the workers cannot read this run's request"


@dataclass
class Call:
    """A call whose reservation was granted; ``usage``: what its settle reported, if one ran."""

    run: str
    call_id: str
    bound: int
    usage: int | None = None


@dataclass(eq=False)
class Execution:
    """A member execution: its lease token, its budget attempt, the calls it may settle."""

    run: str
    member: str
    token: str
    attempt: str = field(default_factory=lambda: uuid4().hex[:8])
    made: int = 0
    calls: list[Call] = field(default_factory=list)

    def next_call_id(self) -> str:  # as CallBudget (workers/providers/budgeted.py) makes them
        self.made += 1
        return f"{self.token}/{self.attempt}/{self.made - 1}"


def output_of(member: str, outcome: Outcome, text: str) -> AgentOutput:
    if outcome == "ok":  # text: its writer's, so that an overwrite would show
        return AgentOutput(name=f"member {member}", answer=text)
    return AgentOutput.not_run(f"member {member}", outcome, text)


def end_event(run: str, output: AgentOutput) -> AgentEnd:
    return AgentEnd(run_id=run, name=output.name, outcome=output.outcome, error=output.error)


class Workers:
    """Coordinators, watchdogs, member executions. ``lost``: a step's reply never came."""

    def __init__(self, client: redis.Redis, url: str) -> None:
        self.client = client
        self.live = RunStore(client, Settings(redis_url=url, lease_s=3600))
        self.lapsed = RunStore(client, Settings(redis_url=url, lease_s=0.001))
        self.broker: list[tuple[str, str, str]] = []
        self.running: list[Execution] = []
        self.dead: set[str] = set()
        self.calls: list[Call] = []

    def store(self, lost: bool) -> RunStore:
        return self.lapsed if lost else self.live

    def lapse(self) -> None:
        """Wait until Redis's clock is past every 1 ms lease written so far."""
        past = self.live.now_ms() + 1
        while self.live.now_ms() <= past:
            time.sleep(0.001)

    def readable(self, run: str) -> bool:
        try:
            return bool(self.live.request(run))
        except (LookupError, ValueError):
            return False

    def make_unreadable(self, run: str) -> None:
        self.client.hset(RunKeys(run).run, "request", UNREADABLE)  # from another version
        _cached_request.cache_clear()  # a worker of that version never read it

    def is_running(self, run: str) -> bool:
        return (status := self.live.status(run)) is not None and status.state in LIVE

    def publish(self, run: str, members: list[str]) -> None:
        if members:
            self.broker += [(run, member, "") for member in members]
            self.live.confirm_published(run, NODE, members)

    def apply_admission(self, run: str, admission: Admission) -> None:
        pending = [(run, admission)]
        while pending:
            run_id, step = pending.pop()
            self.publish(run_id, [str(index) for index in step.admitted])
            for index, reason in step.denied:
                pending.append((run_id, self.end_unrun(run_id, str(index), "skipped", reason)))
            pending.extend(step.others.items())

    def end_unrun(self, run: str, member: str, outcome: Outcome, reason: str) -> Admission:
        output = output_of(member, outcome, reason)
        done = self.live.complete(run, member, output, [end_event(run, output)], node=NODE)
        if done.stored:
            self.returned(run, member, output, done.drained)
        return done.admission

    def returned(self, run: str, member: str, output: AgentOutput, drained: bool) -> None:
        """A member's task returned: the final one ends the run, the chord counts the others."""
        status = self.live.status(run)
        if member == FINAL and self.readable(run):  # else: the watchdog ends the run
            self.after_final(run, output)
        elif status is not None and (drained or status.finished_members >= status.total):
            self.after_members(run)

    def admit(self, run: str, lost: bool) -> None:
        if (status := self.live.status(run)) is None or status.state != "pending":
            return
        admission = self.store(lost).start(run, NODE)
        if lost:
            return self.lapse()
        self.apply_admission(run, admission)
        if admission.cancel:
            self.sweep(run, lost=False)

    def after_members(self, run: str) -> None:
        """A map-reduce's chord body: gate the reducer, or end the run without it."""
        if self.readable(run):
            request = self.live.request(run)
            # A reducer function is no agent of the budget (MapReduceKind.after_members).
            agent = not isinstance(request, MapReduceRequest) or request.reducer is not None
            verdict, reason = self.live.gate_final(run, NODE, "", agent=agent)
            if verdict == "admitted":
                self.publish(run, [FINAL])
            elif verdict != "gone":
                outcome: Outcome = "skipped" if verdict == "denied" else "cancelled"
                self.after_final(run, output_of(FINAL, outcome, reason))

    def after_final(self, run: str, final: AgentOutput) -> None:
        status = self.live.status(run)
        state: RunState = "failed" if final.outcome == "error" else "succeeded"
        if status is not None:
            self.live.finalize(run, "cancelled" if status.cancel_reason else state, "")

    def swept(self, run: str) -> Sweep:
        """A sweep once every 1 ms lease lapsed; its own lapse before the next step."""
        self.lapse()
        found = self.lapsed.sweep(run, NODE)
        self.lapse()
        return found

    def sweep(self, run: str, lost: bool) -> None:
        """``sweep_run``, acting on every finding."""
        found = self.swept(run)
        if lost or found.state not in LIVE:
            return
        if not self.readable(run):
            return self.end_unreadable(run, found)
        status = self.live.status(run)
        if status is not None and status.group and found.state == "running":
            self.apply_admission(run, self.lapsed.repair_group(run, NODE))
        self.publish(run, found.republish)
        if found.abandon or found.unstarted:
            self.end_cancelled(run, found)
        for member in found.expire:
            self.apply_admission(run, self.end_unrun(run, member, "error", "timed out"))
        for member, reason in found.denied:
            self.apply_admission(run, self.end_unrun(run, member, "skipped", reason))
        if found.action == "readmit":
            self.admit(run, lost=False)
        elif found.action == "regate":
            self.after_members(run)
        elif found.action == "refinish" and (final := self.live.stored_output(run, FINAL)):
            self.after_final(run, final)
        elif found.action == "requeue" and not self.broker:  # the queue holds no message
            self.publish(run, self.live.requeue_queued(run, NODE))

    def end_cancelled(self, run: str, found: Sweep) -> None:
        """What a cancel leaves: the queued members, then the never-published range, in bulk."""
        reason = f"cancelled: {found.cancel}"
        drained = self.end_bulk(run, [m for m in found.abandon if m != FINAL], reason, None)
        unstarted = [str(index) for index in found.unstarted]
        drained = self.end_bulk(run, unstarted, reason, found.unstarted.stop) or drained
        if FINAL in found.abandon:
            self.apply_admission(run, self.end_unrun(run, FINAL, "cancelled", reason))
        elif drained:
            self.after_members(run)

    def end_bulk(self, run: str, members: list[str], reason: str, advance: int | None) -> bool:
        if not members:
            return False
        outputs = [output_of(member, "cancelled", reason) for member in members]
        ended = [(m, o.model_dump_json(), end_event(run, o).model_dump_json())
                 for m, o in zip(members, outputs, strict=True)]  # fmt: skip
        _, drained, freed = self.live.end_members(run, "cancelled", ended, advance, node=NODE)
        self.apply_admission(run, freed)
        return drained

    def end_unreadable(self, run: str, found: Sweep) -> None:
        """``end_unreadable_run``: end what the given sweep took and what a fresh one finds."""
        cancelled = bool(found.cancel) and not found.cancel.startswith(UNREADABLE_REASON)
        self.live.request_cancel(run, UNREADABLE_REASON)
        self.apply_admission(run, self.live.start(run, NODE))
        taken = [*found.abandon, *found.expire, *(m for m, _ in found.denied)]  # not republish
        cancel = found.cancel or UNREADABLE_REASON
        self.end_cancelled(run, replace(found, cancel=cancel, abandon=taken, denied=[]))
        self.end_cancelled(run, self.swept(run))
        status = self.live.status(run)
        if status is not None and status.in_flight == 0 and status.finished_members >= status.total:
            self.live.finalize(run, "cancelled" if cancelled else "failed", "", UNREADABLE_REASON)

    def hand_back(self, run: str, received: bool, lost: bool) -> None:
        """A batch message found no free slot for the run's members: they go back (lanes.py)."""
        members = [m for r, m, token in self.broker if r == run and m != FINAL and not token]
        self.broker = [d for d in self.broker if d[0] != run or d[1] not in members]
        if received:  # it had written their receptions, then forgot them: they lapse
            self.lapsed.renew([(run, member, f"r:{NODE}") for member in members])
        handed = self.store(lost).hand_back(run, NODE, members)
        if lost:  # the publish failed: the hand-back lease lapses
            return self.lapse()
        self.publish(run, handed)

    def deliver(self, index: int, lost: bool) -> None:
        run, member, previous = self.broker.pop(index)
        if self.readable(run):  # else dropped: the watchdog ends such a run
            self.claim(Execution(run, member, uuid4().hex), lost, previous)

    def claim(self, ex: Execution, lost: bool, previous: str) -> None:
        store, start = self.store(lost), AgentStart(run_id=ex.run, name=f"member {ex.member}")
        claim = store.claim(ex.run, ex.member, ex.token, 3600, start, previous)
        if claim.action == "busy" and claim.input in self.dead:  # its process is gone
            claim = store.claim(ex.run, ex.member, ex.token, 3600, start, claim.input)
        if lost:  # the delivery is tried again, with the same token
            self.broker.append((ex.run, ex.member, ex.token))
            return self.lapse()
        if claim.action == "run":
            self.running.append(ex)
        elif claim.action in ("cancelled", "timeout"):
            self.complete(ex, "cancelled" if claim.action == "cancelled" else "error", False)
        elif claim.action == "done":
            self.returned(ex.run, ex.member, AgentOutput.model_validate_json(claim.input), False)

    def reserve(self, ex: Execution, bound: int, lost: bool) -> None:
        call_id = ex.next_call_id()
        verdict, _ = RunBudget(self.client, ex.run).reserve(ex.member, ex.token, call_id, bound, 0)
        if verdict == "ok":
            self.calls.append(Call(ex.run, call_id, bound))
            if not lost:  # lost: the call is not made, nor ever settled
                ex.calls.append(self.calls[-1])

    def settle(self, ex: Execution, call: Call, usage: int, lost: bool) -> None:
        call.usage = usage if call.usage is None else call.usage  # a retry reports the same
        RunBudget(self.client, ex.run).settle(call.call_id, call.usage, 0)
        if not lost:
            ex.calls.remove(call)

    def complete(self, ex: Execution, outcome: Outcome, lost: bool) -> None:
        if ex in self.running:
            self.running.remove(ex)
        output = output_of(ex.member, outcome, f"{ex.token}/{ex.attempt}")
        done = self.store(lost).complete(
            ex.run, ex.member, output, [end_event(ex.run, output)], node=NODE, token=ex.token,
            calls=(f"{ex.token}/{ex.attempt}", ex.made),
        )  # fmt: skip
        if lost:  # the delivery is tried again, with the same token
            self.broker.append((ex.run, ex.member, ex.token))
            return self.lapse()
        self.apply_admission(ex.run, done.admission)
        if done.output is not None:
            self.returned(ex.run, ex.member, done.output, done.drained)

    def retry(self, ex: Execution) -> None:
        """The delivery is retried with its token after an outage: a new attempt."""
        self.running.remove(ex)
        self.claim(Execution(ex.run, ex.member, uuid4().hex), False, ex.token)
        self.hang(ex)  # the attempt before ended: its lease, if it still holds it, lapses

    def kill(self, ex: Execution, lapse: bool) -> None:
        """The process dies and its message is delivered again (``lapse``: after a lease)."""
        self.running.remove(ex)
        self.dead.add(ex.token)
        self.broker.append((ex.run, ex.member, ""))
        if lapse:
            self.hang(ex)

    def hang(self, ex: Execution) -> None:
        """A lease passes without a renewal (the execution may wake up later)."""
        self.lapsed.renew([(ex.run, ex.member, ex.token)])
        self.lapse()
