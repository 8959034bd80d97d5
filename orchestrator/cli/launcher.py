"""``orchestrator worker``: the recommended layout for agent work, one command.

Agent members wait on models and tools: a worker thread costs little while it waits, and one
Python process runs Python on one core at a time. So the layout is a Celery worker process per
core, each with a large thread pool (``-P threads -c 500``): the processes use the cores for the
per-member work (Redis scripts, Celery messages), the threads hold the waiting members.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

from orchestrator import supervisor
from orchestrator.local import worker_command

DEFAULT_THREADS = 500
"""Threads per worker process: how many members it runs at once (idle ones cost no thread)."""


def default_processes() -> int:
    """One worker process per core this process may run on."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


def run_workers(
    processes: int,
    queues: Sequence[str],
    pool: str,
    concurrency: int,
    extra: Sequence[str],
) -> int:
    """Run ``processes`` Celery workers, named ``w1@host`` and on, until they end: this
    process becomes their supervisor (``supervisor.py``: it forwards SIGTERM and SIGINT, stops
    them all when one ends, and they die with it), run by its path so that it holds none of
    this package. Returns only where ``exec`` is not possible (never on Linux)."""
    named = any(arg in ("-n", "--hostname") or arg.startswith("--hostname=") for arg in extra)
    commands = []
    for number in range(1, processes + 1):
        # Each process needs a node name of its own, unless the caller names them (then
        # --processes 1 is what it wants).
        hostname = [] if named else ["-n", f"w{number}@%h"]
        commands.append(worker_command(queues, pool, concurrency, [*hostname, *extra]))
    sys.stdout.flush()
    # -P: the supervisor's own folder (this package's modules) is not put on its path.
    os.execv(sys.executable, [sys.executable, "-P", supervisor.__file__, json.dumps(commands)])
    return 1  # not reached: exec replaced this process


def exec_worker(queues: Sequence[str], pool: str, concurrency: int, extra: Sequence[str]) -> None:
    """Replace this process with one Celery worker."""
    command = worker_command(queues, pool, concurrency, extra)
    os.execv(sys.executable, command)
