"""A run's end: what its kind calls once it knows how the run ends. ``advance.py`` says when;
this is a module of its own because ``advance.py`` imports the kinds, which call it."""

from __future__ import annotations

from celery import Celery

from orchestrator.models import RunState
from orchestrator.state.events import Event
from orchestrator.state.store import RunStore
from workers.coordination.family import cancel_children


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
    # Nothing a run started outlives it.
    cancel_children(app, store, run_id, f"its parent run ended {state}")
