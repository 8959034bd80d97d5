"""Run records leave for the learners as each agent run ends.

A member's record is sent when its output is stored, so that learners learn during a long
run (the cache learner plans a map-reduce's later mappers from its first ones), not after it.
"""

from __future__ import annotations

import logging

from celery import Celery

from orchestrator.events import Event
from orchestrator.models import RunRecord, RunState
from orchestrator.run_store import RunStore

INGEST_TASK = "tasks.learner.ingest"

log = logging.getLogger(__name__)


def finish_run(
    app: Celery,
    store: RunStore,
    run_id: str,
    state: RunState,
    ending_json: str,
    error: str = "",
    events: tuple[Event, ...] = (),
) -> None:
    """End the run once (its members' records have left as each member ended); see
    ``RunStore.finalize`` for ``ending_json``."""
    store.finalize(run_id, state, ending_json, error, events)


def ship_record(app: Celery, record: RunRecord) -> None:
    """Send one agent run's record to the ``learner`` queue; a record that cannot be sent (the
    broker is down) is logged and dropped: learning loses one sample, no run waits on it."""
    try:
        app.send_task(
            INGEST_TASK,
            args=([record.model_dump(mode="json")],),
            queue="learner",
            add_to_parent=False,
        )
    except Exception as error:
        log.warning(
            "run %s: record of %s not sent to the learners: %s",
            record.run_id,
            record.agent_name,
            error,
        )
