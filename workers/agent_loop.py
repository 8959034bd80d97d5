"""The agent loop: model turns until a final answer or ``max_turns``.

It never raises: a provider failure becomes an ``error`` output, a cancel a ``cancelled`` one,
and every model and tool call is recorded for the learners.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.models import (
    AgentOutput,
    AgentSpec,
    CallRecord,
    Message,
    Outcome,
    RunRecord,
    Usage,
    utcnow,
)
from workers.cancellation import Cancelled, CancelToken
from workers.providers import ModelProvider, get_provider


@dataclass
class AgentRun:
    """What one agent run leaves: its output, the full context and the record of its calls."""

    output: AgentOutput
    messages: list[Message]
    record: RunRecord


def run_agent(
    spec: AgentSpec,
    prompt: str,
    *,
    run_id: str,
    name: str | None = None,
    cancel: CancelToken | None = None,
    provider_for: Callable[[str], ModelProvider] = get_provider,
) -> AgentRun:
    """Run ``spec`` on ``prompt`` and return its output; ``name`` overrides the output's name."""
    cancel = cancel or CancelToken()
    agent_name = name or spec.name
    started = utcnow()
    clock = time.perf_counter()
    record = RunRecord(run_id=run_id, agent_name=agent_name, agent_id=spec.name, started_at=started)
    messages: list[Message] = []
    if spec.instructions:
        messages.append(Message(role="system", content=spec.instructions))
    messages.append(Message(role="user", content=prompt))
    usage = Usage()
    turns = tool_call_count = 0
    tools_used: list[str] = []

    def finish(outcome: Outcome, answer: str = "", error: str | None = None) -> AgentRun:
        ended = utcnow()
        record.ended_at = ended
        record.outcome = outcome
        output = AgentOutput(
            name=agent_name,
            answer=answer,
            outcome=outcome,
            error=error,
            turns=turns,
            tool_calls=tool_call_count,
            tokens=usage,
            started_at=started,
            ended_at=ended,
            duration_ms=(time.perf_counter() - clock) * 1000,
            tools_used=tools_used,
        )
        return AgentRun(output=output, messages=messages, record=record)

    try:
        provider = provider_for(spec.model.provider)
    except Exception as missing:
        return finish("error", error=f"{type(missing).__name__}: {missing}")
    for _ in range(spec.max_turns):
        call = CallRecord(kind="model", name=spec.model.model, started_at=utcnow())
        record.calls.append(call)
        try:
            cancel.check()
            response = provider.complete(spec.model, messages, cancel)
        except Cancelled as stop:
            call.ended_at, call.status = utcnow(), "cancelled"
            return finish("cancelled", error=f"cancelled: {stop}")
        except Exception as failure:  # a provider failure must not crash the member
            call.ended_at, call.status = utcnow(), "error"
            call.error = f"{type(failure).__name__}: {failure}"
            return finish("error", error=call.error)
        call.ended_at, call.usage = utcnow(), response.usage
        usage = usage + response.usage
        turns += 1
        messages.append(
            Message(role="assistant", content=response.text, tool_calls=response.tool_calls)
        )
        if not response.tool_calls:
            return finish("ok", answer=response.text)
        for tool_call in response.tool_calls:
            tool_call_count += 1
            # No tool can run yet: every call is answered with an error the model can read.
            now = utcnow()
            error = f"tool {tool_call.name!r} is not available to agent {spec.name!r}"
            record.calls.append(
                CallRecord(
                    kind="tool",
                    name=tool_call.name,
                    started_at=now,
                    ended_at=now,
                    status="error",
                    error=error,
                )
            )
            messages.append(Message(role="tool", content=error, tool_call_id=tool_call.id))
    return finish("error", error=f"max_turns ({spec.max_turns}) reached without a final answer")
