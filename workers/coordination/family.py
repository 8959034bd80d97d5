"""Child runs never outlive what they belong to: cancelled with their parent, and ended when
their parent run ends or the member that started them ends without waiting for them.

Three paths, so that one that is late or lost is covered by another: the waiting member
cancels its child as soon as its own execution is stopped (``workers/kinds/children.py``); the
parent's sweep and end cancel its children (called from ``steps.sweep_run`` and
``records.finish_run``); and each child's own sweep ends it when its parent is gone
(``cancel_if_orphaned``). A cancel of a child goes on to its own children the same way.
"""

from __future__ import annotations

import logging

from celery import Celery

from orchestrator.state.children import RunFamily
from orchestrator.state.store import RunStore

log = logging.getLogger(__name__)
CANCEL_TASK = "tasks.coordinator.cancel_run"


def cancel_run(app: Celery, store: RunStore, run_id: str, reason: str) -> bool:
    """Flag the run cancelled (its running members hear it at once) and have a coordinator end
    what it left unstarted; False when it had ended or was already cancelled."""
    flagged = store.request_cancel(run_id, reason)
    if flagged:
        app.send_task(CANCEL_TASK, args=(run_id,), queue="coordinator")
    return flagged


def cancel_children(
    app: Celery, store: RunStore, run_id: str, reason: str, member: str | None = None
) -> None:
    """Cancel the children of the run (of one of its members) that have not ended."""
    for child in RunFamily(store.client).children(run_id, member):
        if cancel_run(app, store, child, reason):
            log.info("run %s: child run %s cancelled (%s)", run_id, child, reason)


def cancel_if_orphaned(app: Celery, store: RunStore, run_id: str) -> None:
    """Cancel a child run whose parent run ended or is cancelled, or whose member ended."""
    reason = RunFamily(store.client).orphaned(run_id)
    if reason:
        cancel_run(app, store, run_id, reason)
