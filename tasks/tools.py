"""Tool tasks (queue ``tools``): remote tool calls."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

from opentelemetry.trace import SpanKind

from orchestrator import tracing
from orchestrator.tools import calling
from workers.app import app, runtime
from workers.tools.calls import SlotRef
from workers.tools.process import ToolStopped, run_in_child, until_stopped
from workers.tools.remote import RemoteToolStopped, claim_start
from workers.tools.remote_watch import RemoteWatch
from workers.tools.runner import render

# The time limit of a call from an agent of a version that sends none (rolling upgrade).
DEFAULT_LIMIT_S = 300.0


@app.task(name="tasks.tools.call_tool")
def call_tool(
    name: str,
    arguments: dict[str, Any],
    *,
    key: str = "",
    ticket: str | None = None,
    limit_s: float | None = None,
    caller: bool = False,
    slot: SlotRef | None = None,
) -> dict[str, str]:
    """Run tool ``name`` here, unless its agent stopped the call first (``ticket``), and stop
    it when its agent asks, when its agent is gone (``caller``: the agent keeps a heartbeat) or
    past ``limit_s``; ``slot`` is renewed while it runs. Its exceptions fail the task and
    reach the calling agent. Every keyword has a default, so that a message of an agent of an
    earlier version (``name`` and ``arguments`` only) still runs: without a ticket, nothing
    can stop it before it starts."""
    # Under the calling agent's ``execute_tool`` span (its context came with the message).
    attributes = {tracing.GEN_AI_TOOL_NAME: name}
    with tracing.span_under(None, f"call_tool {name}", attributes, SpanKind.CONSUMER):
        found = runtime.tool_registry.get(name)
        if found is None:
            raise LookupError(f"tool {name!r} is not served by this worker")
        kwargs = found.validate(arguments)
        client = runtime.store.client
        ticket = ticket or f"tool:{name}:{uuid4().hex}"
        claim = claim_start(client, ticket)
        if claim == "stopped":
            raise RemoteToolStopped(f"remote tool {name!r} was stopped before it started")
        if claim == "lost":
            raise RemoteToolStopped(
                f"remote tool {name!r} was started by a tools worker that was lost: it may have "
                "done part or all of its work"
            )
        watch = RemoteWatch(client, ticket, caller, slot, runtime.settings.lease_s)
        limit = DEFAULT_LIMIT_S if limit_s is None else limit_s
        try:
            if found.is_async:
                with calling(key):
                    content = render(asyncio.run(until_stopped(found(**kwargs), watch, limit)))
            else:
                content = run_in_child(name, arguments, key, watch, limit)
        except ToolStopped as stop:
            reason = f" ({watch.reason})" if watch.reason else ""
            raise RemoteToolStopped(f"remote tool {name!r}: {stop}{reason}") from None
        return {"content": content}
