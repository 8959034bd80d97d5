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

from pydantic import JsonValue

from orchestrator.models import (
    AgentCheckpoint,
    AgentOutput,
    AgentSpec,
    CallRecord,
    Message,
    Outcome,
    RunRecord,
    ToolCall,
    Usage,
    utcnow,
)
from orchestrator.state.connection import write_refusal
from workers import spans
from workers.agent import structured
from workers.agent.plan_use import PARALLEL_FLAG_PROVIDERS, hint_text
from workers.agent.state import AgentState
from workers.agent.turn_events import AgentEvents as AgentEvents
from workers.execution.cancellation import Cancelled, CancelToken
from workers.providers import ModelProvider
from workers.providers.budgeted import BudgetExceeded
from workers.tools.registry import ToolRegistry
from workers.tools.runner import ToolResult, ToolRunner

_NO_TOOLS = ToolRunner(ToolRegistry({}))
NOT_RUN = "not run: this was the last turn max_turns allows, and no model would read the result"
MAX_TURNS = "max_turns ({}) reached: the last turn's {} tool call(s) were not run"


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
    provider_for: Callable[[str], ModelProvider],
    resume: AgentCheckpoint | None = None,
    checkpoint: Callable[[AgentCheckpoint], object] | None = None,
    parallel_groups: list[list[str]] | None = None,
    guard: Callable[[], None] | None = None,
    call_scope: str | None = None,
) -> AgentRun:
    """Run ``spec`` on ``context`` plus ``prompt`` (as a new user message, when given); its
    tool calls run on ``tools`` under ``spec.tool_policy``.

    After each tool result, ``checkpoint`` gets the agent's state; a run given that state as
    ``resume`` continues from there, without repeating the model and tool calls it records
    (the calls of a turn still running when the state was saved run again: tools are
    at-least-once for the call in flight). A call's idempotency key is
    ``call_scope/call id`` (default scope: ``run_id/name``). A tool result is cut to
    ``RESULT_SHARE`` of the model's context window.

    The last turn ``max_turns`` allows runs no tool calls: the run ends ``error`` saying
    ``max_turns`` was reached, its calls answered as not run.

    With ``spec.output_schema``, the final answer's value is the output's ``data`` (its compact
    JSON the ``answer``); one the schema refuses is given back to the model with why, up to
    ``spec.output_retries`` times, beyond ``max_turns`` (``workers/agent/structured.py``).

    ``parallel_groups`` are the tools that may run together (the agent's plan with its own):
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
    scope = call_scope or f"{run_id}/{agent_name}"
    clock = time.perf_counter()
    base = list(context or [])
    parallel_groups = parallel_groups or []
    instructions = spec.instructions
    if spec.plan_mode == "inject_hints" and parallel_groups:
        instructions = f"{instructions}\n\n{hint_text(parallel_groups)}".strip()
    system = [Message(role="system", content=instructions)] if instructions else []
    scheduled = parallel_groups if spec.plan_mode == "schedule" else []
    if resume is not None:
        state = AgentState.resumed(resume)
    else:
        prompted = [Message(role="user", content=prompt)] if prompt is not None else []
        state = AgentState(started_at=utcnow(), new_messages=prompted)
    new_messages = state.new_messages
    record = RunRecord(
        run_id=run_id,
        agent_name=agent_name,
        agent_id=spec.agent_id,
        started_at=state.started_at,
        calls=state.calls,
    )
    state.calls = record.calls  # the record keeps a copy: one list, kept by both

    def finish(
        outcome: Outcome, answer: str = "", error: str | None = None, data: JsonValue = None
    ) -> AgentRun:
        ended = utcnow()
        record.ended_at = ended
        record.outcome = outcome
        output = AgentOutput(
            name=agent_name,
            answer=answer,
            data=data,
            outcome=outcome,
            error=error,
            turns=state.turns,
            tool_calls=state.tool_calls,
            tokens=state.usage,
            started_at=state.started_at,
            ended_at=ended,
            duration_ms=(time.perf_counter() - clock) * 1000,
            tools_used=state.tools_used,
        )
        return AgentRun(output, new_messages, base + new_messages, record)

    def save() -> None:
        if checkpoint is not None:
            checkpoint(state.checkpoint())

    def run_tools(calls: list[ToolCall]) -> None:
        """Run the turn's ``calls``, checkpointing after each result: a resumed run repeats
        only the calls that had not ended."""

        def keep(_: int, result: ToolResult) -> None:
            state.add_result(result, spec.model.context_window)
            save()

        stop = state.turn_failure() if spec.tool_policy.join == "fail_fast" else ""
        if stop:  # resumed after the turn failed: the calls queued behind it never start
            results = [ToolResult(call=call, status="cancelled", content=stop) for call in calls]
        else:
            results = tools.run(
                calls, spec.tools, spec.tool_policy, cancel, events, scheduled,
                scope=scope, on_result=keep,
            )  # fmt: skip
        added = state.add_unreported(results, spec.model.context_window)
        if state.order_results() or added:
            save()

    def stopped(stop: Cancelled) -> AgentRun:
        error = f"cancelled: {stop}" if cancel.outcome == "cancelled" else str(stop)
        return finish(cancel.outcome, error=error)

    try:
        provider = provider_for(spec.model.provider)
    except Exception as missing:
        return finish("error", error=f"{type(missing).__name__}: {missing}")
    offered = tools.infos(spec.tools)
    model = spec.model
    if spec.thinking:
        model = model.model_copy(update={"options": {**model.options, "thinking": spec.thinking}})
    flagged = spec.plan_mode == "inject_hints" and bool(parallel_groups)
    if flagged and model.provider in PARALLEL_FLAG_PROVIDERS:
        options = {**model.options, "parallel_tool_calls": True}
        model = model.model_copy(update={"options": options})
    schema = spec.output_json_schema
    model = structured.asked(model, schema)  # each surface asks in its own native mode

    def turn_limit() -> int:
        return spec.max_turns + state.output_retries

    if unanswered := state.unanswered():  # resumed in the middle of a turn's tool calls
        try:
            guard()
        except Cancelled as stop:
            return stopped(stop)
        run_tools(unanswered)
    while state.turns < turn_limit():
        call = CallRecord(kind="model", name=spec.model.model, started_at=utcnow())
        record.calls.append(call)
        try:
            cancel.check()
            guard()
            response = provider.complete(model, system + base + new_messages, cancel, offered)
        except Cancelled as stop:
            call.ended_at, call.status = utcnow(), "cancelled"
            error = f"cancelled: {stop}" if cancel.outcome == "cancelled" else str(stop)
            events.model_turn(state.turns + 1, call.started_at, Usage(), [], error, final=True)
            return finish(cancel.outcome, error=error)
        except BudgetExceeded as denied:
            # The call was not made, so it is no call of the record (and has no span).
            record.calls.pop()
            spans.budget_denied(str(denied))
            reason = str(denied)
            events.model_turn(state.turns + 1, call.started_at, Usage(), [], reason, final=True)
            return finish("skipped" if state.turns == 0 else "error", error=reason)
        except Exception as failure:  # a provider failure must not crash the member
            if write_refusal(failure) is not None:
                raise  # Redis is full: the call's fate is not the model's (see budgeted.py)
            call.ended_at, call.status = utcnow(), "error"
            call.error = f"{type(failure).__name__}: {failure}"
            events.model_turn(state.turns + 1, call.started_at, Usage(), [], call.error, final=True)
            return finish("error", error=call.error)
        call.started_at = response.started_at or call.started_at
        call.ended_at, call.usage = response.ended_at or utcnow(), response.usage
        call.surface, call.request_digest = response.surface, response.request_digest
        call.prompt, call.cache = response.prompt, response.cache
        state.usage = state.usage + response.usage
        state.turns += 1
        names = [tool_call.name for tool_call in response.tool_calls]
        checked: structured.CheckedAnswer | None = None
        if schema is not None and not response.tool_calls:
            checked = structured.check_answer(schema, response.text)
        retry = checked is not None and not checked.valid
        retry = retry and state.output_retries < spec.output_retries
        last = not retry and (not response.tool_calls or state.turns >= turn_limit())
        events.model_turn(
            state.turns,
            call.started_at,
            response.usage,
            names,
            None,
            final=last,
            ended=call.ended_at,
            cache=response.cache,
            output_error=structured.problems(checked) if checked and not checked.valid else None,
        )
        new_messages.append(
            Message(
                role="assistant",
                content=response.text,
                tool_calls=response.tool_calls,
                thinking=response.thinking,
            )
        )
        if checked is not None and not checked.valid:
            if retry:
                state.output_retries += 1
                new_messages.append(Message(role="user", content=structured.retry_prompt(checked)))
                continue
            error = structured.final_error(checked, state.output_retries + 1)
            return finish("error", answer=response.text, error=error)
        if checked is not None:
            return finish("ok", answer=checked.answer, data=checked.data)
        if not response.tool_calls:
            return finish("ok", answer=response.text)
        if state.turns >= turn_limit():
            # No model would read their results: the calls are not made, and the context
            # says so (every tool call answered, so that it can be continued).
            for tool_call in response.tool_calls:
                message = Message(role="tool", content=NOT_RUN, tool_call_id=tool_call.id)
                new_messages.append(message)
            return finish("error", error=MAX_TURNS.format(spec.max_turns, len(names)))
        try:
            guard()
        except Cancelled as stop:
            return stopped(stop)
        run_tools(response.tool_calls)
    return finish("error", error=f"max_turns ({spec.max_turns}) reached without a final answer")
