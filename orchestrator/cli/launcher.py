"""``orchestrator worker``: the recommended layout for agent work, one command.

Agent members wait on models and tools: a worker thread costs little while it waits, and one
Python process runs Python on one core at a time. So the layout is a Celery worker process per
core, each with a large thread pool (``-P threads -c 500``): the processes use the cores for the
per-member work (Redis scripts, Celery messages), the threads hold the waiting members.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType

from orchestrator.local import worker_command

DEFAULT_THREADS = 500
"""Threads per worker process: how many members it runs at once (idle ones cost no thread)."""


def default_processes() -> int:
    """One worker process per core this process may run on."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


PR_SET_PDEATHSIG = 1
"""Linux ``prctl`` option: the signal a process gets when its parent dies."""


def _die_with(parent: int) -> None:
    """Run in a worker process between fork and exec: have the kernel SIGKILL it when the
    supervisor dies, however it dies (a SIGKILL gives it no chance to stop its workers). A
    parent that died before this took effect is caught by comparing the parent's pid."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def die_with_this_process() -> Callable[[], None] | None:
    """The ``preexec_fn`` that makes a child end with this process (on Linux; elsewhere None:
    the children then outlive a supervisor that is killed)."""
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()
    return lambda: _die_with(parent)


def run_workers(
    processes: int,
    queues: Sequence[str],
    pool: str,
    concurrency: int,
    extra: Sequence[str],
) -> int:
    """Run ``processes`` Celery workers, named ``w1@host`` and on, until they end.

    SIGTERM and SIGINT go to every worker (a warm shutdown each); should one worker end, the
    others are stopped too, so a supervisor (systemd, Docker) sees the group end and restarts
    it. Should the supervisor itself be killed, every worker is killed with it (a worker
    left running would be unsupervised); their members are then taken over as any dead
    worker's are. Returns the first non-zero exit status, else 0.
    """
    named = any(arg in ("-n", "--hostname") or arg.startswith("--hostname=") for arg in extra)
    children = []
    for number in range(1, processes + 1):
        # Each process needs a node name of its own, unless the caller names them (then
        # --processes 1 is what it wants).
        hostname = [] if named else ["-n", f"w{number}@%h"]
        command = worker_command(queues, pool, concurrency, [*hostname, *extra])
        children.append(subprocess.Popen(command, preexec_fn=die_with_this_process()))

    def forward(signum: int, _: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    while any(child.poll() is None for child in children):
        ended = [child.returncode for child in children if child.returncode is not None]
        if ended:
            status = status or next((code for code in ended if code), 0)
            forward(signal.SIGTERM, None)
            for child in children:
                child.wait()
            break
        time.sleep(0.2)
    codes = [child.returncode for child in children]
    return status or next((code for code in codes if code), 0)


def exec_worker(queues: Sequence[str], pool: str, concurrency: int, extra: Sequence[str]) -> None:
    """Replace this process with one Celery worker."""
    command = worker_command(queues, pool, concurrency, extra)
    os.execv(sys.executable, command)
