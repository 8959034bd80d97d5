"""Where a run advances: every member ended -> the chord body (the run's kind gates its final
agent, or ends the run) -> the final agent ended -> the run's end (``ending.finish_run``).

Every path that may find a run's members all ended, or its final agent ended, calls one of
the steps below, named for why it calls; the body and the kind's ending are reached from here
only. Each step is safe to repeat: the kinds' steps are (``RunKind``), and a run ends once
(``RunStore.finalize``)."""

from __future__ import annotations

from celery import Celery

from orchestrator.models import AgentOutput, RunState
from orchestrator.state.keys import FINAL_MEMBER
from orchestrator.state.store import Completion, RunStore
from workers import spans
from workers.coordination.ending import finish_run
from workers.kinds import kind_of


def after_chord(app: Celery, store: RunStore, run_id: str) -> None:
    """The chord body (task ``tasks.coordinator.after_members``): Celery counted every
    member's result."""
    _body(app, store, run_id)


def after_completion(app: Celery, store: RunStore, run_id: str, completion: Completion) -> None:
    """A member's output was stored (it ran, or was ended without running). Members ended by a
    cancel are never counted by the chord: a cancelled run whose members have all ended, with
    nothing in flight (``completion.drained``), runs its body now."""
    if completion.drained:
        _body(app, store, run_id)


def after_cancel_ended(app: Celery, store: RunStore, run_id: str, drained: bool) -> None:
    """A cancel ended members in bulk (``RunStore.end_members``): as for ``after_completion``,
    the body runs now once the run is ``drained``."""
    if drained:
        _body(app, store, run_id)


def after_lost_body(app: Celery, store: RunStore, run_id: str) -> None:
    """The watchdog found every member ended and the run quiet for a lease with no final
    agent gated (a sweep's ``regate``): the body's task was lost with a process."""
    _body(app, store, run_id)


def after_child_drained(app: Celery, store: RunStore, run_id: str) -> None:
    """A member waiting on its child run ``run_id`` found every member of the child ended and
    no chord body run yet: the waiting member runs the body itself, so that a child never waits
    for a worker slot its parent holds (``workers/kinds/children.py``)."""
    _body(app, store, run_id)


def after_final(app: Celery, store: RunStore, run_id: str, final: AgentOutput) -> None:
    """The final agent ended with ``final`` (it ran, or was ended without running): the run's
    kind ends the run."""
    kind_of(store.request(run_id)).after_final(app, store, run_id, final)


def after_lost_end(app: Celery, store: RunStore, run_id: str) -> None:
    """The watchdog found the final agent's output stored and the run not ended (a sweep's
    ``refinish``): the end was lost with a process."""
    final = store.stored_output(run_id, FINAL_MEMBER)
    if final is not None:
        after_final(app, store, run_id, final)


def after_unreadable_ended(
    app: Celery, store: RunStore, run_id: str, state: RunState, error: str
) -> None:
    """The watchdog ended the members of a run whose request this worker cannot read
    (``steps.end_unreadable_run``): with no kind to hand over to, the run ends as ``state``
    with ``error`` once its members have all ended. Another watchdog or cancel may be ending
    members at the same time: whoever sees the last of them ended ends the run."""
    status = store.status(run_id)
    if status is not None and status.in_flight == 0 and status.finished_members >= status.total:
        finish_run(app, store, run_id, state, "", error)


def _body(app: Celery, store: RunStore, run_id: str) -> None:
    """The chord body of any run: hand over to its kind."""
    try:
        request = store.request(run_id)
    except LookupError:
        return  # the run is gone
    except ValueError:
        return  # unreadable: the watchdog ends such a run (``end_unreadable_run``)
    with spans.run_span(store, run_id, "after_members"):
        kind_of(request).after_members(app, store, run_id)
