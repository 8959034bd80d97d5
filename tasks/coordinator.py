"""Coordinator tasks (queue ``coordinator``): admission, the reducer gate, cancellation."""

from __future__ import annotations

from typing import Any

from workers.app import app
from workers.coordinator import admit, sweep_run
from workers.coordinator import gate_reducer as gate
from workers.runtime import store


@app.task(name="tasks.coordinator.admit_run")
def admit_run(run_id: str) -> None:
    """Register the run's chord and publish its first window of members."""
    admit(app, store(), run_id)


@app.task(name="tasks.coordinator.gate_reducer")
def gate_reducer(members: list[dict[str, Any]], run_id: str) -> None:
    """The chord body: gate the reducer on the budget, then run it or end the run.

    ``members`` are the chord's member references; the outputs are read from the run.
    """
    gate(app, store(), run_id, store().outputs(run_id))


@app.task(name="tasks.coordinator.cancel_run")
def cancel_run(run_id: str) -> None:
    """End at once the members of a cancelled run that were never published."""
    sweep_run(app, store(), run_id)
