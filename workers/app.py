"""The Celery app: ``celery -A workers.app worker -Q coordinator,agents -P threads -c 16``."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_ready, worker_shutdown

from orchestrator.celery_config import celery_config
from workers.startup import StartupError, check_settings, check_tool_modules, exit_with

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
try:
    _settings = check_settings()
except StartupError as error:  # one line, no traceback, wherever the app is loaded
    raise SystemExit(f"error: {error}") from None
app.conf.update(celery_config(_settings))


@worker_init.connect
def _check_worker(sender: Any = None, **_: Any) -> None:
    """Before the worker consumes anything: every tool module imports and forms a registry."""
    if getattr(sender, "app", None) is not app:
        return
    try:
        check_tool_modules(_settings.tool_module_names)
    except StartupError as error:
        exit_with(error)


@worker_ready.connect
def _start_watchdog(sender: Any = None, **_: Any) -> None:
    from workers.runtime import watchdog

    hostname = getattr(sender, "hostname", None) or "worker"
    watchdog(app).start(hostname)


@worker_shutdown.connect
def _stop_watchdog(**_: Any) -> None:
    from workers.runtime import watchdog

    watchdog(app).stop()
