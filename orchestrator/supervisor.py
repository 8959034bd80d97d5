"""The process ``orchestrator worker`` becomes once it has built its workers' command lines:
it starts them, forwards SIGTERM and SIGINT to them, and ends when they end.

Run by its path (``python .../supervisor.py COMMANDS_JSON``), it imports the standard library
only, never this package: the supervisor of a worker host then holds about 10 MB instead of
the CLI's 60 (its client, models and console), which counts against the host's memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from types import FrameType

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


def supervise(commands: list[list[str]]) -> int:
    """Run one child per command until they end.

    SIGTERM and SIGINT go to every child (a warm shutdown each); should one child end, the
    others are stopped too, so a supervisor (systemd, Docker) sees the group end and restarts
    it. Should this process itself be killed, every child is killed with it (a worker left
    running would be unsupervised); their members are then taken over as any dead worker's
    are. Returns the first non-zero exit status, else 0.
    """
    children = [subprocess.Popen(c, preexec_fn=die_with_this_process()) for c in commands]
    signalled: set[int] = set()  # children already asked to stop

    def forward(signum: int, _: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)
                signalled.add(child.pid)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    while any(child.poll() is None for child in children):
        ended = [child.returncode for child in children if child.returncode is not None]
        if ended:
            status = status or next((code for code in ended if code), 0)
            # Stop the others, but never twice: a second SIGTERM during a Celery worker's warm
            # shutdown ends it at once, cutting short the members it was finishing.
            for child in children:
                if child.poll() is None and child.pid not in signalled:
                    child.send_signal(signal.SIGTERM)
                    signalled.add(child.pid)
            for child in children:
                child.wait()
            break
        time.sleep(0.2)
    codes = [child.returncode for child in children]
    return status or next((code for code in codes if code), 0)


if __name__ == "__main__":
    sys.exit(supervise(json.loads(sys.argv[1])))
