"""Tool tasks (queue ``tools``): remote tool calls."""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry.trace import SpanKind

from orchestrator import tracing
from workers.app import app
from workers.runtime import tool_registry
from workers.tool_runner import render


@app.task(name="tasks.tools.call_tool")
def call_tool(name: str, arguments: dict[str, Any]) -> dict[str, str]:
    """Run tool ``name`` here; its exceptions fail the task and reach the calling agent."""
    # Under the calling agent's ``execute_tool`` span (its context came with the message).
    attributes = {tracing.GEN_AI_TOOL_NAME: name}
    with tracing.span_under(None, f"call_tool {name}", attributes, SpanKind.CONSUMER):
        found = tool_registry().get(name)
        if found is None:
            raise LookupError(f"tool {name!r} is not served by this worker")
        kwargs = found.validate(arguments)
        if found.is_async:
            value = asyncio.run(found.function(**kwargs))
        else:
            value = found.function(**kwargs)
        return {"content": render(value)}
