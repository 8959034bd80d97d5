"""What a worker's first run would otherwise pay for, done as the worker starts, before it
announces itself (a client that waits for it submits to a warm worker): its pool's threads, its
Redis connections, the run scripts in Redis, the objects a member execution uses.

A wide first run starts hundreds of members at once in each process; without this, each of
them would start a thread, open a connection or two (each a handshake of several round trips)
and find the scripts missing from a fresh Redis, all while the others wait for the GIL.
A warm-up that fails is logged and the worker starts all the same: it only saves time.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis

from orchestrator.state.scripts import load_script
from workers.runtime import WorkerRuntime

log = logging.getLogger(__name__)

WARM_CONNECTIONS = 64
"""Connections opened in each Redis pool a member uses (run state, result backend): about as
many as a wide first run's members hold at once in one process, with the GIL in between."""
MEMBER_SCRIPTS = (
    "start_run", "claim_member", "complete_member", "confirm_published", "renew_lease",
    "gate_final", "finalize_run", "emit_event",
)  # fmt: skip
"""The run scripts of a map-reduce's path, loaded into Redis (a fresh one has none)."""
THREADS_WAIT_S = 10.0


def warm_up(runtime: WorkerRuntime, pool: Any) -> None:
    """Warm this worker process: ``pool`` is its Celery execution pool."""
    try:
        _member_objects(runtime)
        client = runtime.store.client
        for name in MEMBER_SCRIPTS:
            load_script(client, name)
        # No more than the pool's threads can hold at once: a small worker (-c 8) opens 8.
        wanted = min(WARM_CONNECTIONS, max(1, int(getattr(pool, "limit", 0) or WARM_CONNECTIONS)))
        _open_connections(client, wanted)
        backend_client = getattr(runtime.app.backend, "client", None)
        if isinstance(backend_client, redis.Redis):
            _open_connections(backend_client, wanted)
        _start_threads(pool)
    except Exception as error:  # only time is lost: the first run does it instead
        log.warning("worker warm-up incomplete: %s", error)


def _member_objects(runtime: WorkerRuntime) -> None:
    """Make what member executions share (built once per process, on first use otherwise)."""
    runtime.member  # noqa: B018 - built by the property
    runtime.lease_keeper  # noqa: B018


def _open_connections(client: redis.Redis, wanted: int) -> None:
    """Open ``wanted`` connections of ``client``'s pool (at most its size) and give them back."""
    pool = client.connection_pool
    count = min(wanted, getattr(pool, "max_connections", wanted))
    taken = []
    try:
        for _ in range(count):
            connection = pool.get_connection()
            connection.connect()  # type: ignore[no-untyped-call]
            taken.append(connection)
    finally:
        for connection in taken:
            pool.release(connection)


def _start_threads(pool: Any) -> None:
    """Start every thread of a thread pool (Celery's ``threads`` pool starts one per task
    until it has ``-c`` of them): each waits until all have started."""
    executor = getattr(pool, "executor", None)
    if not isinstance(executor, ThreadPoolExecutor):
        return  # another pool: nothing to start
    size = executor._max_workers  # the pool's size, which Celery set
    started = threading.Barrier(size + 1)

    def wait() -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            started.wait(THREADS_WAIT_S)

    for _ in range(size):
        executor.submit(wait)
    try:
        started.wait(THREADS_WAIT_S)
    except threading.BrokenBarrierError:
        log.warning("worker warm-up: not every pool thread started in %s s", THREADS_WAIT_S)
