"""Remote tool calls as the tools worker runs them, stoppable where they run.

An async tool is cancelled when its call must stop. A sync tool cannot be interrupted in a
thread, so it runs in a child process (forked from a server process that has the tool
modules loaded, so a call costs a fork, not an import), which is killed when its call must
stop: a sync remote tool therefore keeps no state in its module between calls.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable, Coroutine
from functools import cache
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from typing import Any

from orchestrator.settings import get_settings
from orchestrator.tools import calling
from workers.tool_calls import render
from workers.tool_registry import ToolRegistry

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
    receiving, sending = multiprocessing.Pipe(duplex=False)
    child = _context().Process(
        target=_child, args=(name, arguments, key, sending), name=f"ao-tool-{name}", daemon=True
    )
    child.start()
    sending.close()
    end = time.monotonic() + limit_s
    try:
        while not receiving.poll(WATCH_S):
            if stopped() or time.monotonic() > end:
                raise ToolStopped("stopped while running: its process was killed")
            if not child.is_alive() and not receiving.poll(0):
                raise ToolStopped(f"its process ended without a result ({child.exitcode})")
        status, text = receiving.recv()
    except EOFError:  # it died (killed from outside, out of memory) before it answered
        raise ToolStopped(f"its process ended without a result ({child.exitcode})") from None
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receiving.close()
    if status != "ok":
        raise ToolRaised(text)
    return str(text)


@cache
def _context() -> ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    assert isinstance(context, ForkServerContext)
    # ``__main__`` too: else every child would run the worker's main script again (the
    # ``celery`` entry point) before its tool.
    context.set_forkserver_preload(["__main__", __name__, *get_settings().tool_module_names])
    return context


def _child(name: str, arguments: dict[str, Any], key: str, result: Connection) -> None:
    tool = ToolRegistry.from_modules(get_settings().tool_module_names).get(name)
    try:
        if tool is None:
            raise LookupError(f"tool {name!r} is not served by this worker")
        with calling(key):
            value = tool.function(**tool.validate(arguments))
        result.send(("ok", render(value)))
    except Exception as failure:  # the parent reports it as the tool's error
        result.send(("error", f"{type(failure).__name__}: {failure}"))
    finally:
        result.close()
