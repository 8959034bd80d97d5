"""Tool tasks (queue ``tools``): remote tool calls."""

from __future__ import annotations

import asyncio
from typing import Any

from workers.app import app
from workers.runtime import tool_registry
from workers.tool_runner import render


@app.task(name="tasks.tools.call_tool")
def call_tool(name: str, arguments: dict[str, Any]) -> dict[str, str]:
    """Run tool ``name`` here; its exceptions fail the task and reach the calling agent."""
    found = tool_registry().get(name)
    if found is None:
        raise LookupError(f"tool {name!r} is not served by this worker")
    kwargs = found.validate(arguments)
    value = asyncio.run(found.function(**kwargs)) if found.is_async else found.function(**kwargs)
    return {"content": render(value)}
