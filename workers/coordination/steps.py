"""The coordinator's steps of a capped chord, for every kind of run: admission, publishing what
a step admitted, ending members that never ran, the watchdog's sweep of a run. They are called
from coordinator tasks, from a finishing member's completion path (``apply_admission`` costs no
extra task) and from the watchdog. Where a run goes once its members have ended is
``advance.py``."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from itertools import islice

from celery import Celery

from orchestrator.models import AgentOutput, Outcome, RunState
from orchestrator.models.requests import RunRequest
from orchestrator.state.events import AgentEnd
from orchestrator.state.keys import FINAL_MEMBER, member_task_id
from orchestrator.state.store import Admission, RunStore, Sweep
from workers import spans
from workers.broker.queues import waiting_messages
from workers.coordination import advance, canvas, family
from workers.coordination.publishing import publish
from workers.identity import node_name
from workers.kinds import MemberIdentity, kind_of

log = logging.getLogger(__name__)

UNREADABLE = "the workers cannot read this run's request:"
# Members ended in one script call when a run is cancelled: large enough that a 100,000-item
# run ends in a few seconds, small enough that one call does not hold Redis for long.
BULK_END_CHUNK = 5000


def apply_admission(
    app: Celery,
    store: RunStore,
    run_id: str,
    admission: Admission,
    keep: bool = False,
    short: bool = False,
) -> int | None:
    """Publish the admitted members; end the denied ones as ``skipped`` with the reason. The
    same for the admissions of the other runs of the run's concurrency group, each in its run.

    With ``keep``, the first admitted member of the run itself is not published but returned,
    for the caller to run next (``workers/execution/lanes.py``); it holds its admission lease until
    its
    claim, so it is published again by the watchdog should the caller die first. ``short``:
    the run is known to be short, so that its admitted members may share messages
    (``publishing.publish``); the other runs of its group are not."""
    kept: int | None = None
    pending = [(run_id, admission)]
    while pending:
        run, step = pending.pop()
        admitted = step.admitted
        if keep and kept is None and run == run_id and admitted:
            kept, admitted = admitted[0], admitted[1:]
        # A publish that fails is redone by the watchdog once the admission's lease expires.
        publish(app, store, run, [str(index) for index in admitted], short and run == run_id)
        for index, reason in step.denied:
            ending = end_unrun_member(app, store, run, str(index), "skipped", reason)
            pending.append((run, ending))
        pending.extend(step.others.items())
    return kept


def namer(store: RunStore, run_id: str) -> Callable[[str], MemberIdentity]:
    """How the run's members are named; a run whose request this worker cannot read gets
    plain names, so that it can still be ended."""
    try:
        request = store.request(run_id)
    except ValueError:
        return lambda member: MemberIdentity(
            f"member {member}", index=None if member == FINAL_MEMBER else int(member)
        )
    kind = kind_of(request)
    return lambda member: kind.identity(request, member)


def end_unrun_member(
    app: Celery, store: RunStore, run_id: str, member: str, outcome: Outcome, reason: str
) -> Admission:
    """End a member that never ran (or was lost) with ``outcome``; it is counted by the chord."""
    identity = namer(store, run_id)(member)
    if outcome == "skipped":  # members are skipped by the budget only
        spans.budget_denied(reason, member)
    output = AgentOutput.not_run(identity.name, outcome, reason)
    event = AgentEnd(run_id=run_id, outcome=outcome, error=reason, **identity.event_fields())
    completion = store.complete(run_id, member, output, [event], node=node_name())
    if not completion.stored:
        return Admission()
    if member == FINAL_MEMBER:
        try:
            store.request(run_id)
        except ValueError:
            return completion.admission  # unreadable: ``end_unreadable_run`` ends the run
        advance.after_final(app, store, run_id, output)
    else:
        canvas.count_member(app, run_id, int(member), output)
    advance.after_completion(app, store, run_id, completion)
    return completion.admission


def admit(app: Celery, store: RunStore, run_id: str) -> None:
    """Register the run's chord and publish its first window (safe to repeat: a second
    admission finds the window full and the chord size unchanged)."""
    status = store.status(run_id)
    if status is None or status.state != "pending":
        return
    with spans.run_span(store, run_id, "admit_run"):
        canvas.register_chord(app, run_id, status.total)
        admission = store.start(run_id, node_name())
        apply_admission(app, store, run_id, admission)
    if admission.cancel:
        sweep_run(app, store, run_id)


def sweep_run(app: Celery, store: RunStore, run_id: str) -> None:
    """The watchdog's pass over one run: apply its deadline, publish lost members again, end
    timed-out ones, end at once everything a cancel leaves unstarted, redo a step between
    members that a dead process lost."""
    sweep = store.sweep(run_id, node_name())
    if sweep.state not in ("pending", "running"):
        # A big run is forgotten once its readers had their time and its events were trimmed.
        if not store.trim_ended_events(run_id):
            store.forget_active(run_id)
        return
    # A cancel reaches the run's child runs; a child whose parent is gone ends.
    if sweep.cancel:
        family.cancel_children(app, store, run_id, f"its parent run is cancelled: {sweep.cancel}")
    else:
        family.cancel_if_orphaned(app, store, run_id)
    try:
        request = store.request(run_id)
    except LookupError:
        store.forget_active(run_id)
        return
    except ValueError as unreadable:
        end_unreadable_run(app, store, run_id, sweep, str(unreadable))
        return
    if request.group is not None and sweep.state == "running":
        apply_admission(app, store, run_id, store.repair_group(run_id, node_name()))
    if _idle(sweep):
        return  # most sweeps find nothing to do: they leave no span
    with spans.run_span(store, run_id, "sweep_run", spans.sweep_attributes(sweep)):
        _apply_sweep(app, store, run_id, request, sweep)


def _idle(sweep: Sweep) -> bool:
    work = (sweep.republish, sweep.abandon, sweep.unstarted, sweep.expire, sweep.denied)
    return not (any(work) or sweep.action)


def _apply_sweep(
    app: Celery, store: RunStore, run_id: str, request: RunRequest, sweep: Sweep
) -> None:
    publish(app, store, run_id, sweep.republish)
    if sweep.abandon or sweep.unstarted:
        end_cancelled_members(app, store, run_id, sweep)
    kind = kind_of(request)
    for member in sweep.expire:
        limit = kind.spec(request, member, store.settings).timeout_s
        admission = end_unrun_member(
            app, store, run_id, member, "error", f"timed out after {limit:g} s"
        )
        apply_admission(app, store, run_id, admission)
    for member, reason in sweep.denied:  # denied by the budget, their ending lost
        admission = end_unrun_member(app, store, run_id, member, "skipped", reason)
        apply_admission(app, store, run_id, admission)
    if sweep.action == "readmit":
        admit(app, store, run_id)
    elif sweep.action == "regate":
        advance.after_lost_body(app, store, run_id)
    elif sweep.action == "refinish":
        advance.after_lost_end(app, store, run_id)
    elif sweep.action == "requeue":
        publish_lost_messages(app, store, run_id)


def publish_lost_messages(app: Celery, store: RunStore, run_id: str) -> None:
    """The run has been quiet for a lease with members confirmed as queued (a sweep's
    ``requeue``). If the members' queue holds no message, theirs were taken by a worker that
    went away (cut off, killed) before it noted the reception: a queued member has no lease
    to expire, so they are published again. A member whose message is in a live worker's
    hands is noted as received within its reception grace (then it is no longer queued); one
    published again inside that grace has two messages, and the second is dropped by its
    claim."""
    if waiting_messages(app, canvas.MEMBER_QUEUE):
        return  # they may still be in the queue, behind others: waiting is not a loss
    members = store.requeue_queued(run_id, node_name())
    if members:
        log.warning("run %s: queued members %s have no message: published again", run_id, members)
    publish(app, store, run_id, members)


def end_cancelled_members(app: Celery, store: RunStore, run_id: str, sweep: Sweep) -> None:
    """End what a cancel leaves: queued and prefetched members (their messages are revoked,
    so that workers drop them unstarted) and the never-published range, in bulk."""
    queued = [m for m in sweep.abandon if m != FINAL_MEMBER]
    if queued:
        app.control.revoke([member_task_id(run_id, int(m)) for m in queued])
    reason = f"cancelled: {sweep.cancel}"
    drained = False
    for chunk in _chunks(queued, BULK_END_CHUNK):
        ended = list(_not_run(store, run_id, chunk, reason))
        _, drained, freed = store.end_members(run_id, "cancelled", ended, node=node_name())
        # The group slots the run held go to the other runs of its group.
        apply_admission(app, store, run_id, freed)
    # In order, each chunk marking the range handled up to its end: should this process die
    # part way, the next sweep finds the rest of the range still unstarted.
    for chunk in _chunks(map(str, sweep.unstarted), BULK_END_CHUNK):
        ended = list(_not_run(store, run_id, chunk, reason))
        handled = int(chunk[-1]) + 1
        _, drained, freed = store.end_members(run_id, "cancelled", ended, handled, node=node_name())
        apply_admission(app, store, run_id, freed)
    if FINAL_MEMBER in sweep.abandon:
        freed = end_unrun_member(app, store, run_id, FINAL_MEMBER, "cancelled", reason)
        apply_admission(app, store, run_id, freed)
    else:
        advance.after_cancel_ended(app, store, run_id, drained)


def end_unreadable_run(
    app: Celery, store: RunStore, run_id: str, sweep: Sweep, problem: str
) -> None:
    """End a run whose request this worker cannot read: its members can never run. It ends
    ``cancelled`` if it was cancelled, else ``failed``, with the reason."""
    reason = f"{UNREADABLE} {problem}"
    # A cancel of its own (not one an earlier pass made, worded by whatever worker made it).
    cancelled = bool(sweep.cancel) and not sweep.cancel.startswith(UNREADABLE)
    state: RunState = "cancelled" if cancelled else "failed"
    store.request_cancel(run_id, reason)
    # A pending run starts, and its cancel admits none of its own members (but its group may
    # have room for another run's).
    apply_admission(app, store, run_id, store.start(run_id, node_name()))
    # What the sweep that found the run unreadable took over to end (expired leases it
    # re-leased as being ended) is ended first: a later sweep sees those members held under
    # fresh leases, and would leave them be until the leases expire again, for ever. (What it
    # handed back to publish is held as admitted: the next sweep abandons it, cancel now set.)
    taken = [*sweep.abandon, *sweep.expire, *(member for member, _ in sweep.denied)]
    given = replace(sweep, cancel=sweep.cancel or reason, abandon=taken, expire=[], denied=[])
    end_cancelled_members(app, store, run_id, replace(given, republish=[]))
    end_cancelled_members(app, store, run_id, store.sweep(run_id, node_name()))
    advance.after_unreadable_ended(app, store, run_id, state, sweep.cancel if cancelled else reason)


def _not_run(
    store: RunStore, run_id: str, members: list[str], reason: str
) -> Iterator[tuple[str, str, str]]:
    """The cancelled output and AgentEnd (JSON) of each of ``members``, from one template:
    bulk ends are what makes a 100,000-item run end in seconds, so no model per member."""
    name_of = namer(store, run_id)
    output = AgentOutput.not_run("", "cancelled", reason).model_dump(mode="json")
    event = AgentEnd(run_id=run_id, name="", outcome="cancelled", error=reason)
    end = event.model_dump(mode="json")
    for member in members:
        identity = name_of(member)
        yield (
            member,
            json.dumps({**output, "name": identity.name}),
            json.dumps({**end, **identity.event_fields()}),
        )


def _chunks(members: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(members)
    while chunk := list(islice(iterator, size)):
        yield chunk
