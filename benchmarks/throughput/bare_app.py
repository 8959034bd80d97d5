"""The baseline of the scale benchmark: a bare Celery app, Celery's defaults plus JSON.

``celery -A benchmarks.throughput.bare_app worker -P threads -c N`` with ``BARE_REDIS_URL`` set runs
its workers; the benchmark's process builds the same app to publish chords. Nothing of this project
is imported: the baseline is what a user of Celery alone would run."""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery


def make_app(url: str) -> Celery:
    """Celery's defaults, with JSON named explicitly (as this project requires)."""
    app = Celery("bare", broker=url, backend=url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
    )
    app.task(name="bare.noop")(_noop)
    app.task(name="bare.sleep_ms")(_sleep_ms)
    app.task(name="bare.collect")(_collect)
    return app


def _noop(*args: Any) -> None:
    """A member that takes no time."""


def _sleep_ms(milliseconds: float, *_: Any) -> float:
    """A member (or a body) that waits ``milliseconds``, as on a model."""
    time.sleep(milliseconds / 1000)
    return milliseconds


def _collect(results: list[Any]) -> int:
    """A body that counts its header's results."""
    return len(results)


# The workers' app (``-A benchmarks.throughput.bare_app``), on the Redis the benchmark started.
app: Celery | None = (
    make_app(os.environ["BARE_REDIS_URL"]) if "BARE_REDIS_URL" in os.environ else None
)
