"""What one tool call is and leaves: its result, its events, a remote call in flight, and the
thread a sync tool runs in."""

from __future__ import annotations

import contextvars
import json
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypedDict

from pydantic import BaseModel

from orchestrator.models import ToolCall

ToolStatus = Literal["ok", "error", "timeout", "cancelled"]


@dataclass
class ToolResult:
    """The result of one tool call, as the model will read it."""

    call: ToolCall
    status: ToolStatus
    content: str
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class ToolEvents:
    """Where the runner reports calls starting and ending (the agent's event sink)."""

    def tool_start(self, call: ToolCall) -> None:
        """A call begins."""

    def tool_end(self, call: ToolCall, status: str, error: str | None) -> None:
        """A call ended."""


class RemoteCall:
    """A tool call running as a task elsewhere; the runner awaits or stops it."""

    async def outcome(self) -> str:
        """The call's content; raises on failure."""
        raise NotImplementedError

    def stop(self) -> bool:
        """Stop the call where it runs; True when it had not started (it never will)."""
        raise NotImplementedError

    def wait_ended(self) -> None:
        """Block until a call that had started has really ended where it runs (or can run no
        longer: the bound its tools worker applies has passed)."""
        raise NotImplementedError


class SlotRef(TypedDict):
    """A held slot of a shared limit, as a tools worker renews it: the limit's name and the
    holder's token (a random id, no secret)."""

    name: str
    token: str


RemoteStarter = Callable[[str, dict[str, Any], str, float, SlotRef | None], RemoteCall]
"""Starts a remote call: tool name, JSON arguments, idempotency key, time limit in seconds,
and the call's slot (None when its tool has no limit), which its tools worker renews while
the call runs."""


class ThreadsExhausted(Exception):
    """Too many sync calls of this process still run past their timeout: no new one starts."""


class AbandonedThreads:
    """Counts the sync calls whose waiter stopped (timeout, fail-fast) while their thread still
    runs. Such a thread cannot be interrupted, so the count is capped: past ``cap`` a new sync
    call is refused with an error instead of adding a thread, and a process whose tools hang
    holds at most ``cap`` such threads."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._count = 0
        self._lock = threading.Lock()

    def check(self) -> None:
        """Raise ``ThreadsExhausted`` when no further sync call may start."""
        with self._lock:
            if self._count >= self._cap:
                raise ThreadsExhausted(
                    f"{self._count} sync tool calls of this worker still run past their timeout "
                    f"(at most {self._cap}): no new one starts until some end"
                )

    def add(self, thread: Future[Any]) -> None:
        """``thread`` was abandoned: it counts until it ends."""
        with self._lock:
            self._count += 1
        thread.add_done_callback(self._ended)

    def _ended(self, _: Future[Any]) -> None:
        with self._lock:
            self._count -= 1


def render(value: Any) -> str:
    """A tool's return value as the text the model reads."""
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, default=str)


def in_thread(function: Callable[[], Any]) -> Future[Any]:
    """``function()`` on a daemon thread of its own, in the caller's context (so that spans
    the tool makes hang from its call's span). A thread per call, not a pool: a sync tool
    that never returns holds only its own thread, never one that other tools wait for."""
    done: Future[Any] = Future()
    context = contextvars.copy_context()

    def run() -> None:
        if not done.set_running_or_notify_cancel():
            return
        try:
            done.set_result(context.run(function))
        except BaseException as failure:  # the caller reads it from the future
            done.set_exception(failure)

    threading.Thread(target=run, name="ao-tool", daemon=True).start()
    return done
