"""Runs the tool calls of one model turn under a ``ToolPolicy``; results come back in call order.

- ``parallel`` runs up to ``max_concurrency`` calls at once, ``sequential`` one at a time,
  ``plan`` runs consecutive calls that fit one group of the agent's plan together and every
  other call alone.
- ``join_all`` returns every result, with failures as error results the model reads.
  ``fail_fast`` stops at the first failure: calls still queued never start, running async
  functions are cancelled, running remote calls are revoked.
- A call past its timeout (the tool's own, else the policy's) returns a timeout error at once.
- A sync function already running in a thread cannot be interrupted in CPython. On a timeout
  or a fail-fast stop, the agent does not wait for it: its late result is discarded, and its
  shared concurrency slot is released only when the thread really ends.
- A tool with ``max_concurrency`` takes a slot of a limit shared by all workers.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Literal
from uuid import uuid4

from pydantic import BaseModel

from orchestrator import tracing
from orchestrator.models import ToolCall, utcnow
from orchestrator.tools import Tool, ToolArgumentsError, ToolInfo, ToolPolicy
from workers import spans
from workers.cancellation import CancelToken
from workers.limits import SharedLimit
from workers.plan_use import plan_batches
from workers.tool_registry import ToolRegistry

ToolStatus = Literal["ok", "error", "timeout", "cancelled"]

# Sync tools run here. A thread abandoned after a timeout keeps its slot until it returns.
_SYNC_TOOLS = ThreadPoolExecutor(max_workers=64, thread_name_prefix="ao-tool")


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
    """A tool call running as a task elsewhere; the runner awaits or cancels it."""

    async def outcome(self) -> str:
        """The call's content; raises on failure."""
        raise NotImplementedError

    def cancel(self) -> None:
        """Stop the call (revoke it)."""


RemoteStarter = Callable[[str, dict[str, Any]], RemoteCall]


def render(value: Any) -> str:
    """A tool's return value as the text the model reads."""
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, default=str)


class ToolRunner:
    """Runs tool calls for the agents of one worker.

    Parameters:
        registry: the tools this worker serves.
        limit_for: the shared limit of a tool, or None when it has none.
        remote: starts a remote call (None: remote tools are unavailable here).
    """

    def __init__(
        self,
        registry: ToolRegistry,
        limit_for: Callable[[Tool], SharedLimit | None] = lambda tool: None,
        remote: RemoteStarter | None = None,
    ) -> None:
        self._registry = registry
        self._limit_for = limit_for
        self._remote = remote

    def infos(self, names: list[str]) -> list[ToolInfo]:
        """What the model is shown of the tools ``names`` that this worker serves."""
        return [tool.info for name in names if (tool := self._registry.get(name)) is not None]

    def run(
        self,
        calls: list[ToolCall],
        allowed: list[str],
        policy: ToolPolicy,
        cancel: CancelToken,
        events: ToolEvents,
        groups: list[list[str]] | None = None,
    ) -> list[ToolResult]:
        """Run ``calls`` (tools outside ``allowed`` get an error result) and return their
        results in the order of ``calls``. ``groups`` are the plan's groups, for mode
        ``plan``."""
        return asyncio.run(self._run_all(calls, set(allowed), policy, cancel, events, groups or []))

    async def _run_all(
        self,
        calls: list[ToolCall],
        allowed: set[str],
        policy: ToolPolicy,
        cancel: CancelToken,
        events: ToolEvents,
        groups: list[list[str]],
    ) -> list[ToolResult]:
        everything = list(range(len(calls)))
        if policy.mode == "plan":
            batches = [(batch, len(batch)) for batch in plan_batches(calls, groups)]
        elif policy.mode == "sequential":
            batches = [(everything, 1)]
        else:
            batches = [(everything, policy.max_concurrency or len(calls))]
        results: list[ToolResult | None] = [None] * len(calls)
        stop_reason = ""
        for batch, width in batches:
            stop_reason = await self._run_batch(
                [(i, calls[i]) for i in batch], width, results, allowed, policy, cancel, events
            )
            if stop_reason:
                break
        return [
            result or ToolResult(call=call, status="cancelled", content=stop_reason)
            for call, result in zip(calls, results, strict=True)
        ]

    async def _run_batch(
        self,
        batch: list[tuple[int, ToolCall]],
        width: int,
        results: list[ToolResult | None],
        allowed: set[str],
        policy: ToolPolicy,
        cancel: CancelToken,
        events: ToolEvents,
    ) -> str:
        """Run ``batch`` at most ``width`` at once into ``results``; returns why the turn must
        stop ('' to go on)."""
        gate = asyncio.Semaphore(width)

        async def one(index: int, call: ToolCall) -> None:
            async with gate:  # queued calls wait here; a fail-fast stop cancels them unstarted
                results[index] = await self._traced_call(call, allowed, policy, events)

        pending: set[asyncio.Task[None]] = {asyncio.create_task(one(i, c)) for i, c in batch}
        stop_reason = ""
        while pending:
            _, pending = await asyncio.wait(
                pending, timeout=0.1, return_when=asyncio.FIRST_COMPLETED
            )
            if cancel.cancelled:
                stop_reason = f"cancelled: {cancel.reason}"
            elif policy.join == "fail_fast":
                failed = next((r for r in results if r is not None and not r.ok), None)
                if failed is not None:
                    stop_reason = f"cancelled: {failed.call.name} ({failed.call.id}) failed"
            if stop_reason and pending:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                pending = set()
        return stop_reason

    async def _traced_call(
        self, call: ToolCall, allowed: set[str], policy: ToolPolicy, events: ToolEvents
    ) -> ToolResult:
        """``_call`` in an ``execute_tool`` span, which gets the call's status (never its
        arguments or result)."""
        name = f"execute_tool {call.name}"
        with tracing.span_under(None, name, spans.tool_attributes(call)) as span:
            result = await self._call(call, allowed, policy, events)
            if not result.ok:
                tracing.fail(span, result.status)
            return result

    async def _call(
        self, call: ToolCall, allowed: set[str], policy: ToolPolicy, events: ToolEvents
    ) -> ToolResult:
        started = utcnow()

        def ended(status: ToolStatus, content: str) -> ToolResult:
            events.tool_end(call, status, None if status == "ok" else content)
            return ToolResult(call, status, content, started, utcnow())

        events.tool_start(call)
        if call.name not in allowed:
            return ended("error", f"tool {call.name!r} is not available to this agent")
        tool = self._registry.get(call.name)
        if tool is None:
            # The agent lists it and some worker serves it (submit checks), but not the one
            # running the agent: its modules are what is missing, not the agent's permission.
            return ended(
                "error",
                f"tool {call.name!r} is not served by the worker running this agent: add its "
                "module to that worker's ORCHESTRATOR_TOOL_MODULES",
            )
        if tool.info.remote and self._remote is None:
            return ended("error", f"remote tool {call.name!r} cannot be called from here")
        try:
            arguments = tool.validate(call.arguments)
        except ToolArgumentsError as invalid:
            return ended("error", str(invalid))
        timeout = tool.info.timeout_s or policy.timeout_s
        limit = self._limit_for(tool)
        token = uuid4().hex
        try:
            if limit is not None:
                while (wait_s := limit.try_acquire(token)) > 0:
                    await asyncio.sleep(limit.pause(wait_s))
            value = await asyncio.wait_for(self._invoke(tool, arguments, limit, token), timeout)
            return ended("ok", render(value))
        except TimeoutError:
            return ended("timeout", f"tool {call.name!r} timed out after {timeout:g} s")
        except asyncio.CancelledError:
            events.tool_end(call, "cancelled", "cancelled")
            raise
        except Exception as failure:  # a tool's failure is a result the model reads
            return ended("error", f"{type(failure).__name__}: {failure}")
        finally:
            # A local sync call releases its slot when its thread ends (see _invoke).
            releases_itself = not tool.is_async and not tool.info.remote
            if limit is not None and not releases_itself:
                limit.release(token)

    async def _invoke(
        self, tool: Tool, arguments: dict[str, Any], limit: SharedLimit | None, token: str
    ) -> Any:
        if tool.info.remote:
            assert self._remote is not None
            remote = self._remote(tool.name, arguments)
            try:
                return await remote.outcome()
            except asyncio.CancelledError:
                remote.cancel()
                raise
        if tool.is_async:
            return await tool.function(**arguments)
        # In the caller's context, so that spans the tool makes hang from its call's span.
        context = contextvars.copy_context()
        thread: Future[Any] = _SYNC_TOOLS.submit(context.run, partial(tool.function, **arguments))
        if limit is not None:
            # The slot is held until the thread really ends, even if the agent stops waiting.
            thread.add_done_callback(lambda _: limit.release(token))
        return await asyncio.wrap_future(thread)
