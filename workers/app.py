"""The Celery app: ``celery -A workers.app worker -Q coordinator,agents -P threads -c 16``."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import celeryd_init, task_received, worker_init, worker_ready, worker_shutdown

from orchestrator.celery_config import celery_config
from orchestrator.keys import member_of_task
from orchestrator.tracing import flush as flush_spans
from workers.broker_resilience import use_resilient_broker
from workers.canvas import FINAL_TASK, MEMBER_TASK
from workers.node import set_node_name
from workers.startup import (
    StartupError,
    check_settings,
    check_strategy_modules,
    check_tool_modules,
    check_tracing,
    exit_with,
)

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
    check_tracing()
except StartupError as error:  # one line, no traceback, wherever the app is loaded
    raise SystemExit(f"error: {error}") from None
app.conf.update(celery_config(_settings))
use_resilient_broker(app)  # a Redis restart does not kill the worker
MEMBER_TASKS = frozenset({MEMBER_TASK, FINAL_TASK})


@worker_init.connect
def _check_worker(sender: Any = None, **_: Any) -> None:
    """Before the worker consumes anything: every tool module imports and forms a registry."""
    if getattr(sender, "app", None) is not app:
        return
    try:
        check_tool_modules(_settings.tool_module_names)
        check_strategy_modules(_settings.strategy_module_names)
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
    flush_spans()  # the last spans leave before the process does


@celeryd_init.connect
def _name_node(sender: Any = None, **_: Any) -> None:
    """Members this worker admits and takes are held under its node name (``name@host``),
    the name its presence is kept under."""
    if isinstance(sender, str):
        set_node_name(sender)


@task_received.connect
def _hold_received_member(request: Any = None, **_: Any) -> None:
    """A member's message taken by this worker (prefetched, or about to start) is held under
    a lease from now on, so that it runs elsewhere if this worker dies before finishing it."""
    if request is None or request.name not in MEMBER_TASKS:
        return
    member = member_of_task(request.id)
    if member is not None:
        from workers.runtime import lease_keeper

        lease_keeper().received(*member)
