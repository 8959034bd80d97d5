"""Remote tool calls as the tools worker runs them, stoppable where they run.

An async tool is cancelled when its call must stop. A sync tool cannot be interrupted in a
thread, so it runs in a child process (``python -m workers.tools.child``), killed with its
whole process group when its call must stop. The two speak JSON only: the request is one JSON
line on the child's stdin, the result one JSON document on its stdout. The child's stdin stays
open as its lifeline: when the tools worker dies (even SIGKILL), the pipe closes and the child
kills its process group, so no tool outlives the worker that ran it. A sync remote tool
therefore keeps no state in its module between calls, and each call costs a process start
and the import of the tool modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

# How often a running call looks whether it must stop.
WATCH_S = 0.05

Stopped = Callable[[], bool]


class ToolStopped(Exception):
    """The call was stopped before it ended (asked by its agent, or past its time limit)."""


class ToolRaised(Exception):
    """The tool raised; the text is its exception's type and message."""


async def until_stopped(work: Coroutine[Any, Any, Any], stopped: Stopped, limit_s: float) -> Any:
    """``work``'s value; cancelled, raising ``ToolStopped``, once ``stopped()`` or past
    ``limit_s``."""
    task = asyncio.ensure_future(work)
    end = time.monotonic() + limit_s
    while not task.done():
        await asyncio.wait({task}, timeout=WATCH_S)
        if not task.done() and (stopped() or time.monotonic() > end):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise ToolStopped("stopped while running")
    return task.result()


def run_in_child(
    name: str, arguments: dict[str, Any], key: str, stopped: Stopped, limit_s: float
) -> str:
    """Sync tool ``name`` in a child process, killed (raising ``ToolStopped``) once
    ``stopped()`` or past ``limit_s``; its rendered value, or ``ToolRaised``."""
    # The child imports what this process imports from: same modules, same versions.
    path = os.pathsep.join(entry for entry in sys.path if entry)
    child = subprocess.Popen(
        [sys.executable, "-m", "workers.tools.child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": path},
        start_new_session=True,  # its own process group: a kill takes what it started too
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        request = {"name": name, "arguments": arguments, "key": key}
        child.stdin.write(json.dumps(request).encode() + b"\n")
        child.stdin.flush()  # stdin stays open: it is the child's lifeline
        output = _read_all(child.stdout.fileno(), stopped, time.monotonic() + limit_s)
    finally:
        if child.poll() is None:
            _kill_group(child.pid)
        child.wait()
        child.stdin.close()
        child.stdout.close()
    if not output:  # killed from outside, out of memory: it died before it answered
        raise ToolStopped(f"its process ended without a result ({child.returncode})")
    reply = json.loads(output)
    if reply["status"] != "ok":
        raise ToolRaised(str(reply["text"]))
    return str(reply["text"])


def _read_all(fd: int, stopped: Stopped, end: float) -> bytes:
    """Everything the child writes before it closes ``fd``; ``ToolStopped`` once
    ``stopped()`` or past ``end``."""
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([fd], [], [], WATCH_S)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
        elif stopped() or time.monotonic() > end:
            raise ToolStopped("stopped while running: its process was killed")


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended in the meantime
        os.killpg(pid, signal.SIGKILL)
