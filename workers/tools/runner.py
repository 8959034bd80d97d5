"""Runs the tool calls of one model turn under a ``ToolPolicy``; results come back in call order.

- ``parallel`` runs up to ``max_concurrency`` calls at once, ``sequential`` one at a time,
  ``plan`` runs consecutive calls that fit one group of the agent's plan together and every
  other call alone.
- ``join_all`` returns every result, with failures as error results the model reads.
  ``fail_fast`` stops at the first failure: the stop is decided before the failed call gives
  up its place, so calls still queued never start; running async functions are cancelled,
  running remote calls are stopped where they run.
- A call's timeout (the tool's own, else the policy's) bounds everything it waits for, its
  shared slot included; past it the call returns a timeout error at once. Only that timeout
  is reported as one: a tool that raises ``TimeoutError`` itself gets an ordinary error.
- A sync function already running in a thread cannot be interrupted in CPython. On a timeout
  or a fail-fast stop, the agent does not wait for it: its late result is discarded, the
  model is told it may still complete, and its shared slot is held until the thread ends (it
  still runs, so it still counts). At most ``max_abandoned_threads`` such threads per process:
  past that, a sync call is refused with an error rather than given another thread.
- A remote call that is stopped (timeout, fail-fast, cancel) either had not started, and then
  never will, or is stopped on its tools worker; its shared slot is held until it has really
  ended there.
- A tool with ``max_concurrency`` takes a slot of a limit shared by all workers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import redis

from orchestrator import tracing
from orchestrator.models import ToolCall, utcnow
from orchestrator.tools import Tool, ToolArgumentsError, ToolInfo, ToolPolicy, calling
from workers import spans
from workers.execution.cancellation import CancelToken
from workers.limits import SharedLimit
from workers.tools.calls import (
    AbandonedThreads,
    RemoteCall,
    RemoteStarter,
    ToolEvents,
    ToolResult,
    ToolStatus,
    in_thread,
    render,
)
from workers.tools.registry import ToolRegistry
from workers.tools.slots import (
    REMOTE_NOT_STARTED,
    REMOTE_STOP_FAILED,
    REMOTE_STOPPED,
    SYNC_MAY_COMPLETE,
    Attempt,
    Slot,
)
from workers.tools.turn import ResultSink, Turn

__all__ = ["RemoteCall", "ToolEvents", "ToolResult", "ToolRunner", "render"]

log = logging.getLogger(__name__)

# At most this many sync calls per process may still run past their timeout (see
# ``AbandonedThreads``): a bound on the threads hung tools can pile up.
MAX_ABANDONED_THREADS = 64


class ToolRunner:
    """Runs tool calls for the agents of one worker.

    Parameters:
        registry: the tools this worker serves.
        limit_for: the shared limit of a tool, or None when it has none.
        remote: starts a remote call (None: remote tools are unavailable here).
        max_abandoned_threads: how many sync calls may still run past their timeout before
            new sync calls are refused.
    """

    def __init__(
        self,
        registry: ToolRegistry,
        limit_for: Callable[[Tool], SharedLimit | None] = lambda tool: None,
        remote: RemoteStarter | None = None,
        max_abandoned_threads: int = MAX_ABANDONED_THREADS,
    ) -> None:
        self._registry = registry
        self._limit_for = limit_for
        self._remote = remote
        self._abandoned = AbandonedThreads(max_abandoned_threads)

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
        parallel_groups: list[list[str]] | None = None,
        *,
        scope: str = "",
        on_result: ResultSink | None = None,
    ) -> list[ToolResult]:
        """Run ``calls`` (tools outside ``allowed`` get an error result) and return their
        results in the order of ``calls``. ``parallel_groups`` are the plan's tool groups, for mode
        ``plan``. A call's idempotency key is ``scope/call id``; ``on_result`` gets each
        result when it is known, before the call gives up its place to a queued one."""
        turn = Turn(self, calls, set(allowed), policy, cancel, events, scope, on_result)
        return asyncio.run(turn.run_all(parallel_groups or []))

    async def call(
        self,
        call: ToolCall,
        allowed: set[str],
        policy: ToolPolicy,
        events: ToolEvents,
        key: str,
        attempt: Attempt,
    ) -> ToolResult:
        """One call in an ``execute_tool`` span, which gets the call's status (never its
        arguments or result)."""
        name = f"execute_tool {call.name}"
        with tracing.span_under(None, name, spans.tool_attributes(call)) as span:
            result = await self._call(call, allowed, policy, events, key, attempt)
            if not result.ok:
                tracing.fail(span, result.status)
            return result

    async def _call(
        self,
        call: ToolCall,
        allowed: set[str],
        policy: ToolPolicy,
        events: ToolEvents,
        key: str,
        attempt: Attempt,
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
            where = (
                "MCP server to that worker's ORCHESTRATOR_MCP_SERVERS"
                if "." in call.name
                else ("module to that worker's ORCHESTRATOR_TOOL_MODULES")
            )
            return ended(
                "error",
                f"tool {call.name!r} is not served by the worker running this agent: add its "
                + where,
            )
        if tool.info.remote and self._remote is None:
            return ended("error", f"remote tool {call.name!r} cannot be called from here")
        try:
            arguments = tool.validate(call.arguments)
        except ToolArgumentsError as invalid:
            return ended("error", str(invalid))
        timeout = tool.info.timeout_s or policy.timeout_s
        slot = Slot(self._limit_for(tool))
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                await slot.acquire()
                value = await self._invoke(tool, arguments, slot, key, deadline, attempt)
            return ended("ok", render(value))
        except TimeoutError as failure:
            if not deadline.expired():  # the tool's own TimeoutError, not the runner's
                return ended("error", f"{type(failure).__name__}: {failure}")
            message = f"tool {call.name!r} timed out after {timeout:g} s{attempt.note}"
            return ended("timeout", message)
        except asyncio.CancelledError:
            events.tool_end(call, "cancelled", "cancelled")
            raise
        except Exception as failure:  # a tool's failure is a result the model reads
            return ended("error", f"{type(failure).__name__}: {failure}")
        finally:
            slot.settle()

    async def _invoke(
        self,
        tool: Tool,
        arguments: dict[str, Any],
        slot: Slot,
        key: str,
        deadline: asyncio.Timeout,
        attempt: Attempt,
    ) -> Any:
        if tool.info.remote:
            assert self._remote is not None
            when = deadline.when()
            left = max(0.0, when - asyncio.get_running_loop().time()) if when else 0.0
            arguments = tool.wire_arguments(arguments)
            remote = self._remote(tool.name, arguments, key, left, slot.ref())
            try:
                return await remote.outcome()
            except asyncio.CancelledError:
                _stop(remote, slot, attempt)
                raise
        if tool.is_async:
            with calling(key):
                return await tool.function(**arguments)
        self._abandoned.check()
        with calling(key):  # the thread runs in a copy of this context
            thread = in_thread(partial(tool.function, **arguments))
        slot.release_when_done(thread)
        try:
            return await asyncio.wrap_future(thread)
        except asyncio.CancelledError:
            attempt.note = SYNC_MAY_COMPLETE
            self._abandoned.add(thread)
            raise


def _stop(remote: RemoteCall, slot: Slot, attempt: Attempt) -> None:
    """Stop ``remote`` as its call is cancelled; its slot is held until it really ended. When
    the stop itself fails (Redis unreachable), the call may still run: the model is told so,
    and the cancellation goes on."""
    try:
        started = not remote.stop()
    except redis.RedisError as outage:
        log.warning("stopping a remote tool call failed (%s)", outage)
        attempt.note = REMOTE_STOP_FAILED
        slot.release_after(remote)
        return
    if started:
        attempt.note = REMOTE_STOPPED
        slot.release_after(remote)
    else:
        attempt.note = REMOTE_NOT_STARTED
