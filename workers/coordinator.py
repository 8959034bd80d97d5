"""The coordinator's steps of a capped chord, for every kind of run. They are called from
coordinator tasks, from a finishing member's completion path (``apply_admission`` costs no
extra task) and from the watchdog."""

from __future__ import annotations

from celery import Celery

from orchestrator.events import AgentEnd
from orchestrator.keys import FINAL_MEMBER
from orchestrator.models import AgentOutput, Outcome
from orchestrator.run_store import Admission, RunStore
from workers import canvas
from workers.kinds import kind_of


def apply_admission(app: Celery, store: RunStore, run_id: str, admission: Admission) -> None:
    """Publish the admitted members; end the denied ones as ``skipped`` with the reason."""
    pending = [admission]
    while pending:
        step = pending.pop()
        canvas.publish_members(app, run_id, step.admitted)
        for index, reason in step.denied:
            pending.append(end_unrun_member(app, store, run_id, str(index), "skipped", reason))


def end_unrun_member(
    app: Celery, store: RunStore, run_id: str, member: str, outcome: Outcome, reason: str
) -> Admission:
    """End a member that never ran (or was lost in a cancelled run) with ``outcome``."""
    request = store.request(run_id)
    kind = kind_of(request)
    identity = kind.identity(request, member)
    output = AgentOutput.not_run(identity.name, outcome, reason)
    event = AgentEnd(run_id=run_id, outcome=outcome, error=reason, **identity.event_fields())
    completion = store.complete(run_id, member, output, [event])
    if not completion.stored:
        return Admission()
    if member == FINAL_MEMBER:
        kind.after_final(app, store, run_id, output)
    else:
        canvas.count_member_without_message(app, run_id, int(member), output)
    return completion.admission


def admit(app: Celery, store: RunStore, run_id: str) -> None:
    """Register the run's chord and publish its first window (safe to repeat: a second
    admission finds the window full and the chord size unchanged)."""
    status = store.status(run_id)
    if status is None or status.state != "pending":
        return
    canvas.register_chord(app, run_id, status.total)
    admission = store.start(run_id)
    apply_admission(app, store, run_id, admission)
    if admission.cancel:
        sweep_run(app, store, run_id)


def after_members(app: Celery, store: RunStore, run_id: str) -> None:
    """The chord body of any run: hand over to its kind."""
    kind_of(store.request(run_id)).after_members(app, store, run_id)


def sweep_run(app: Celery, store: RunStore, run_id: str) -> None:
    """The watchdog's pass over one run: republish lost members, end abandoned ones, redo a
    step between members that a dead process lost."""
    sweep = store.sweep(run_id)
    if sweep.state not in ("pending", "running"):
        store.forget_active(run_id)
        return
    for member in sweep.republish:
        if member == FINAL_MEMBER:
            canvas.publish_final(app, run_id)
        else:
            canvas.publish_members(app, run_id, [int(member)])
    for member in sweep.abandon:
        admission = end_unrun_member(
            app, store, run_id, member, "cancelled", f"cancelled: {sweep.cancel}"
        )
        apply_admission(app, store, run_id, admission)
    if sweep.action == "readmit":
        admit(app, store, run_id)
    elif sweep.action == "regate":
        after_members(app, store, run_id)
    elif sweep.action == "refinish":
        final = store.stored_output(run_id, FINAL_MEMBER)
        if final is not None:
            kind_of(store.request(run_id)).after_final(app, store, run_id, final)
