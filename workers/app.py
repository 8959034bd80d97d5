"""The Celery app: ``celery -A workers.app worker -Q coordinator,agents -P threads -c 16``."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import (
    celeryd_init,
    task_received,
    worker_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from orchestrator.config.celery_config import celery_config
from orchestrator.state.connection import pool_size, size_pools
from orchestrator.state.keys import member_of_task
from orchestrator.tracing import flush as flush_spans
from workers.broker.resilience import use_resilient_broker
from workers.coordination.canvas import BATCH_TASK, FINAL_TASK, MEMBER_TASK
from workers.identity import node_name, set_node_name
from workers.runtime import WorkerRuntime
from workers.startup import (
    StartupError,
    check_modules,
    check_settings,
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
    # The worker's settings, read once here, at its start; everything else gets them from
    # ``runtime`` (a forked pool child inherits both).
    settings = check_settings()
    check_tracing()
except StartupError as error:  # one line, no traceback, wherever the app is loaded
    raise SystemExit(f"error: {error}") from None
app.conf.update(celery_config(settings))
runtime = WorkerRuntime(app, settings)
use_resilient_broker(app)  # a Redis restart does not kill the worker
MEMBER_TASKS = frozenset({MEMBER_TASK, FINAL_TASK})


@worker_init.connect
def _check_worker(sender: Any = None, **_: Any) -> None:
    """Before the worker consumes anything: every module it serves imports and forms its
    registries (tools, strategies, reducer functions)."""
    if getattr(sender, "app", None) is not app:
        return
    try:
        check_modules(settings)
    except StartupError as error:
        exit_with(error)


@worker_ready.connect
def _start_watchdog(sender: Any = None, **_: Any) -> None:
    from workers.execution.liveness import process_presence
    from workers.warmup import warm_up

    # Before it announces itself: a client waiting for this worker submits to a warm one.
    warm_up(runtime, getattr(sender, "pool", None))
    # Named in Redis from now on, so that the leases it takes name it
    # (workers/execution/liveness.py).
    process_presence(runtime.store.client)
    # Its presence is kept under its node name (Celery's ``name@host``, the sender's
    # ``hostname``), the name it holds admissions and leases under too.
    runtime.watchdog.start(node_name())


@worker_shutdown.connect
def _stop_watchdog(**_: Any) -> None:
    runtime.watchdog.stop()
    runtime.stop_tool_servers()
    flush_spans()  # the last spans leave before the process does
    from workers.execution.records import flush_records

    flush_records()


@celeryd_init.connect
def _name_node(sender: Any = None, conf: Any = None, options: Any = None, **_: Any) -> None:
    """Members this worker admits and takes are held under its node name (``name@host``,
    ``workers/identity.py``), the name its presence is kept under; its Redis pools are sized
    for its concurrency (a thread that finds them taken waits instead of failing its member)."""
    if isinstance(sender, str):
        set_node_name(sender)
    concurrency = (options or {}).get("concurrency") or app.conf.worker_concurrency or 0
    size_pools(int(concurrency))
    from workers.execution.lanes import member_slots

    member_slots.size(int(concurrency))
    # The result backend's pool (chord counting) is redis-py's too, and not a blocking one:
    # it gets the same size.
    app.conf.redis_max_connections = pool_size()


@task_received.connect
def _hold_received_member(request: Any = None, **_: Any) -> None:
    """A member's message taken by this worker (prefetched, or about to start) is held under
    a lease from now on, so that it runs elsewhere if this worker dies before finishing it."""
    if request is None:
        return
    if request.name == BATCH_TASK:
        members = _batch_members(request.args)
    elif request.name in MEMBER_TASKS:
        member = member_of_task(request.id)
        members = [member] if member is not None else []
    else:
        return
    if members:
        keeper = runtime.lease_keeper
        for run_id, index in members:
            keeper.received(run_id, index)


def _batch_members(args: Any) -> list[tuple[str, str]]:
    """The (run id, member) pairs of a batch message's arguments (none if malformed)."""
    try:
        run_id, indices = args
        return [(str(run_id), str(int(index))) for index in indices]
    except (TypeError, ValueError):
        return []


@worker_shutting_down.connect
def _end_lanes(**_: Any) -> None:
    """Lanes stop taking members on once the worker starts its shutdown."""
    from workers.execution.lanes import stop_lanes

    stop_lanes()
