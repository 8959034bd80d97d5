"""The Celery app: ``celery -A workers.app worker -Q coordinator,agents -P threads -c 16``."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from orchestrator.celery_config import celery_config
from orchestrator.settings import get_settings

app = Celery(
    "agent_orchestrator",
    include=[
        "tasks.coordinator",
        "tasks.agents",
        "tasks.tools",
        "tasks.learner",
        "tasks.diagnostics",
    ],
)
app.conf.update(celery_config(get_settings()))


@worker_ready.connect
def _start_watchdog(sender: Any = None, **_: Any) -> None:
    from workers.runtime import store, tool_registry, watchdog

    tool_registry().publish(store().client)
    hostname = getattr(sender, "hostname", None) or "worker"
    watchdog(app).start(hostname)


@worker_shutdown.connect
def _stop_watchdog(**_: Any) -> None:
    from workers.runtime import watchdog

    watchdog(app).stop()
