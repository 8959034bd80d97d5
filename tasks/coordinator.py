"""Coordinator tasks (queue ``coordinator``): admission, the chord body, cancellation."""

from __future__ import annotations

from typing import Any

from workers.app import app, runtime
from workers.coordination import advance, steps


# These return nothing: no task result is stored for them.
@app.task(name="tasks.coordinator.admit_run", ignore_result=True)
def admit_run(run_id: str) -> None:
    """Register the run's chord and publish its first window of members."""
    steps.admit(app, runtime.store, run_id)
    # A new run may be due for a sweep sooner than this worker's watchdog would look (its
    # deadline is near): let it work out its next pass again.
    runtime.watchdog.wake()


@app.task(name="tasks.coordinator.after_members", ignore_result=True)
def after_members(members: list[dict[str, Any]], run_id: str) -> None:
    """The chord body: every member ended; the run's kind gates its final agent or ends it.

    ``members`` are the chord's member references; the outputs are read from the run.
    """
    advance.after_chord(app, runtime.store, run_id)


@app.task(name="tasks.coordinator.cancel_run", ignore_result=True)
def cancel_run(run_id: str) -> None:
    """End at once the members of a cancelled run that were never published."""
    steps.sweep_run(app, runtime.store, run_id)
