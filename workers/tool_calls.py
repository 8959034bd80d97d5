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
from typing import Any, Literal

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


RemoteStarter = Callable[[str, dict[str, Any], str, float], RemoteCall]
"""Starts a remote call: tool name, JSON arguments, idempotency key, time limit in seconds."""


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
