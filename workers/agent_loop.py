"""The agent loop: model turns until a final answer or ``max_turns``.

It never raises: a provider failure becomes an ``error`` output, a cancel a ``cancelled`` one,
and every model and tool call is recorded for the learners. The agent's instructions are sent
as the system message of every call but are not part of its context, so a context can be
continued by an agent with other instructions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.cache_records import CacheDecision
from orchestrator.models import (
    AgentCheckpoint,
    AgentOutput,
    AgentSpec,
    CallRecord,
    Message,
    Outcome,
    RunRecord,
    Usage,
    utcnow,
)
from workers import spans
from workers.cancellation import Cancelled, CancelToken
from workers.plan_use import PARALLEL_FLAG_PROVIDERS, hint_text
from workers.providers import ModelProvider, get_provider
from workers.providers.budgeted import BudgetExceeded
from workers.tool_registry import ToolRegistry
from workers.tool_runner import ToolEvents, ToolRunner

_NO_TOOLS = ToolRunner(ToolRegistry({}))


class AgentEvents(ToolEvents):
    """Where the loop reports its turns and tool calls; this base class reports nowhere."""

    def model_turn(
        self,
        turn: int,
        started: datetime,
        usage: Usage,
        tool_calls: list[str],
        error: str | None,
        final: bool,
        ended: datetime | None = None,
        cache: CacheDecision | None = None,
    ) -> None:
        """A model call that began at ``started`` ended (at ``ended``, when it succeeded);
        ``final`` when it is the run's last; ``cache``: the cache hints its request carried."""


@dataclass
class AgentRun:
    """What one agent run leaves: its output, the messages it added to its context, the whole
    context after it, and the record of its calls."""

    output: AgentOutput
    new_messages: list[Message]
    context: list[Message]
    record: RunRecord = field(repr=False)


def run_agent(
    spec: AgentSpec,
    prompt: str | None = None,
    *,
    context: list[Message] | None = None,
    run_id: str,
    name: str | None = None,
    cancel: CancelToken | None = None,
    events: AgentEvents | None = None,
    tools: ToolRunner = _NO_TOOLS,
    provider_for: Callable[[str], ModelProvider] = get_provider,
    resume: AgentCheckpoint | None = None,
    checkpoint: Callable[[AgentCheckpoint], object] | None = None,
    groups: list[list[str]] | None = None,
    guard: Callable[[], None] | None = None,
) -> AgentRun:
    """Run ``spec`` on ``context`` plus ``prompt`` (as a new user message, when given); its
    tool calls run on ``tools`` under ``spec.tool_policy``.

    After each turn that goes on (its tool results added), ``checkpoint`` gets the agent's
    state; a run given that state as ``resume`` continues from there, without repeating the
    model and tool calls it records.

    ``groups`` are the tools that may run together (the agent's plan with its own groups):
    with ``plan_mode="inject_hints"`` the model is told, with ``"schedule"`` the ``plan`` tool
    policy runs them.

    ``guard`` runs before every model call and every turn's tool calls, and raises
    ``Cancelled`` when the run must make no further call (its lease was lost). A stop ends the
    run with the token's outcome: ``cancelled``, or ``error`` for a time limit or a lost lease.
    A model call that the run's budget cannot fit is not made: the run ends ``skipped`` if it
    made no call before, else ``error``, with the budget's reason.
    """
    cancel = cancel or CancelToken()
    events = events or AgentEvents()
    guard = guard or cancel.check
    agent_name = name or spec.name
    clock = time.perf_counter()
    base = list(context or [])
    groups = groups or []
    instructions = spec.instructions
    if spec.plan_mode == "inject_hints" and groups:
        instructions = f"{instructions}\n\n{hint_text(groups)}".strip()
    system = [Message(role="system", content=instructions)] if instructions else []
    scheduled = groups if spec.plan_mode == "schedule" else []
    if resume is not None:
        started, new_messages, usage = resume.started_at, list(resume.new_messages), resume.usage
        turns, tool_call_count, tools_used = (
            resume.turns,
            resume.tool_calls,
            list(resume.tools_used),
        )
        calls = list(resume.calls)
    else:
        started, usage, turns, tool_call_count = utcnow(), Usage(), 0, 0
        new_messages = [Message(role="user", content=prompt)] if prompt is not None else []
        tools_used, calls = [], []
    record = RunRecord(
        run_id=run_id,
        agent_name=agent_name,
        agent_id=spec.agent_id,
        started_at=started,
        calls=calls,
    )

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
        return AgentRun(output, new_messages, base + new_messages, record)

    try:
        provider = provider_for(spec.model.provider)
    except Exception as missing:
        return finish("error", error=f"{type(missing).__name__}: {missing}")
    offered = tools.infos(spec.tools)
    model = spec.model
    if spec.thinking:
        model = model.model_copy(update={"options": {**model.options, "thinking": spec.thinking}})
    if spec.plan_mode == "inject_hints" and groups and model.provider in PARALLEL_FLAG_PROVIDERS:
        options = {**model.options, "parallel_tool_calls": True}
        model = model.model_copy(update={"options": options})
    while turns < spec.max_turns:
        call = CallRecord(kind="model", name=spec.model.model, started_at=utcnow())
        record.calls.append(call)
        try:
            cancel.check()
            guard()
            response = provider.complete(model, system + base + new_messages, cancel, offered)
        except Cancelled as stop:
            call.ended_at, call.status = utcnow(), "cancelled"
            error = f"cancelled: {stop}" if cancel.outcome == "cancelled" else str(stop)
            events.model_turn(turns + 1, call.started_at, Usage(), [], error, final=True)
            return finish(cancel.outcome, error=error)
        except BudgetExceeded as denied:
            # The call was not made, so it is no call of the record (and has no span).
            record.calls.pop()
            spans.budget_denied(str(denied))
            events.model_turn(turns + 1, call.started_at, Usage(), [], str(denied), final=True)
            return finish("skipped" if turns == 0 else "error", error=str(denied))
        except Exception as failure:  # a provider failure must not crash the member
            call.ended_at, call.status = utcnow(), "error"
            call.error = f"{type(failure).__name__}: {failure}"
            events.model_turn(turns + 1, call.started_at, Usage(), [], call.error, final=True)
            return finish("error", error=call.error)
        call.started_at = response.started_at or call.started_at
        call.ended_at, call.usage = response.ended_at or utcnow(), response.usage
        call.surface, call.request_digest = response.surface, response.request_digest
        call.prompt, call.cache = response.prompt, response.cache
        usage = usage + response.usage
        turns += 1
        names = [tool_call.name for tool_call in response.tool_calls]
        final = not response.tool_calls
        events.model_turn(
            turns,
            call.started_at,
            response.usage,
            names,
            None,
            final=final,
            ended=call.ended_at,
            cache=response.cache,
        )
        new_messages.append(
            Message(role="assistant", content=response.text, tool_calls=response.tool_calls)
        )
        if not response.tool_calls:
            return finish("ok", answer=response.text)
        try:
            guard()
        except Cancelled as stop:
            error = f"cancelled: {stop}" if cancel.outcome == "cancelled" else str(stop)
            return finish(cancel.outcome, error=error)
        results = tools.run(
            response.tool_calls, spec.tools, spec.tool_policy, cancel, events, scheduled
        )
        for result in results:
            tool_call_count += 1
            if result.call.name not in tools_used:
                tools_used.append(result.call.name)
            record.calls.append(
                CallRecord(
                    kind="tool",
                    name=result.call.name,
                    started_at=result.started_at or utcnow(),
                    ended_at=result.ended_at,
                    status=result.status,
                    error=None if result.ok else result.content,
                )
            )
            new_messages.append(
                Message(role="tool", content=result.content, tool_call_id=result.call.id)
            )
        if checkpoint is not None:
            checkpoint(
                AgentCheckpoint(
                    started_at=started,
                    new_messages=new_messages,
                    usage=usage,
                    turns=turns,
                    tool_calls=tool_call_count,
                    tools_used=tools_used,
                    calls=record.calls,
                )
            )
    return finish("error", error=f"max_turns ({spec.max_turns}) reached without a final answer")
