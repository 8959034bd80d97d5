"""Diagnostic tasks: a no-op used by health checks and as the bare-Celery baseline in the
overhead benchmark."""

from __future__ import annotations

import time
from typing import Any

from workers.app import app


@app.task(name="tasks.diagnostics.noop")
def noop(*args: Any) -> None:
    """Do nothing."""


@app.task(name="tasks.diagnostics.collect")
def collect(results: list[Any]) -> int:
    """A chord body that counts its header results."""
    return len(results)


@app.task(name="tasks.diagnostics.sleep_ms")
def sleep_ms(milliseconds: float) -> float:
    """Sleep ``milliseconds`` (the bare-Celery baseline of a member that waits on a model)."""
    time.sleep(milliseconds / 1000)
    return milliseconds
