"""Tool tasks (queue ``tools``): remote tool calls."""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry.trace import SpanKind

from orchestrator import tracing
from orchestrator.tools import calling
from workers.app import app
from workers.remote_tools import RemoteToolStopped, claim_start, stop_requested
from workers.runtime import store, tool_registry
from workers.tool_process import ToolStopped, run_in_child, until_stopped
from workers.tool_runner import render


@app.task(name="tasks.tools.call_tool")
def call_tool(
    name: str, arguments: dict[str, Any], *, key: str, ticket: str, limit_s: float
) -> dict[str, str]:
    """Run tool ``name`` here, unless its agent stopped the call first (``ticket``), and stop
    it when its agent asks or past ``limit_s``; its exceptions fail the task and reach the
    calling agent."""
    # Under the calling agent's ``execute_tool`` span (its context came with the message).
    attributes = {tracing.GEN_AI_TOOL_NAME: name}
    with tracing.span_under(None, f"call_tool {name}", attributes, SpanKind.CONSUMER):
        found = tool_registry().get(name)
        if found is None:
            raise LookupError(f"tool {name!r} is not served by this worker")
        kwargs = found.validate(arguments)
        client = store().client
        if not claim_start(client, ticket):
            raise RemoteToolStopped(f"remote tool {name!r} was stopped before it started")

        def stopped() -> bool:
            return stop_requested(client, ticket)

        try:
            if found.is_async:
                with calling(key):
                    content = render(asyncio.run(until_stopped(found(**kwargs), stopped, limit_s)))
            else:
                content = run_in_child(name, arguments, key, stopped, limit_s)
        except ToolStopped as stop:
            raise RemoteToolStopped(f"remote tool {name!r}: {stop}") from None
        return {"content": content}
