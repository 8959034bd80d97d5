"""Run records leave for the learners when their run ends, in batches."""

from __future__ import annotations

from celery import Celery

from orchestrator.events import Event
from orchestrator.models import RunState
from orchestrator.run_store import RunStore

INGEST_TASK = "tasks.learner.ingest"
RECORDS_PER_TASK = 100


def finish_run(
    app: Celery,
    store: RunStore,
    run_id: str,
    state: RunState,
    result_json: str,
    error: str = "",
    events: tuple[Event, ...] = (),
) -> None:
    """End the run once; the call that ends it sends the run's records to the learners."""
    if store.finalize(run_id, state, result_json, error, events):
        ship_records(app, store, run_id)


def ship_records(app: Celery, store: RunStore, run_id: str) -> None:
    """Send the run's agent records to the ``learner`` queue, 100 to a task."""
    records = store.records(run_id)
    for start in range(0, len(records), RECORDS_PER_TASK):
        batch = records[start : start + RECORDS_PER_TASK]
        app.send_task(INGEST_TASK, args=(batch,), queue="learner", add_to_parent=False)
