"""Reducer functions registered on the test workers with ``@reducer``
(``ORCHESTRATOR_MODULES=tests.registered.reducers``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator import AgentOutput, reducer


@reducer
def sum_totals(task: str, outputs: Sequence[AgentOutput]) -> dict[str, Any]:
    """The sum of the successful mappers' ``data["total"]``, and how many there were."""
    totals = [o.data["total"] for o in outputs if o.succeeded() and isinstance(o.data, dict)]
    return {"task": task, "count": len(totals), "total": sum(totals)}


@reducer(name="outcomes")
def outcome_list(task: str, outputs: Sequence[AgentOutput]) -> list[str]:
    """Every mapper's outcome in item order (failed ones included)."""
    return [output.outcome for output in outputs]


@reducer
def explode(task: str, outputs: Sequence[AgentOutput]) -> None:
    raise RuntimeError(f"no total for {len(outputs)} outputs")


@reducer
def not_json(task: str, outputs: Sequence[AgentOutput]) -> object:
    return {"when": time}


@reducer(timeout_s=1)
def stall(task: str, outputs: Sequence[AgentOutput]) -> None:
    """Never returns in a test's time: its member is stopped by its time limit."""
    time.sleep(600)


@reducer(timeout_s=1800)
def patient(task: str, outputs: Sequence[AgentOutput]) -> int:
    """Waits, within its half hour, for the file its task names (a test's signal)."""
    release = Path(task)
    while not release.exists():
        time.sleep(0.05)
    return len(outputs)
