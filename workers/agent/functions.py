"""Running an agent function (``@agent``) as a member, in place of the built-in loop.

It never raises, as the loop never does: what the function returns is the answer (a JSON value
as its JSON text), an exception ends the member ``error`` with its text (redacted like a
provider's error: a key the worker holds never reaches an output, event or log), a stop ends it
with the stop's outcome (``cancelled``, or ``error`` for a time limit or a lost lease), and a
model call the budget cannot fit ends it ``skipped`` (no call made) or ``error``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import JsonValue, ValidationError

from orchestrator.agents import AgentFunction
from orchestrator.models import (
    AgentCheckpoint,
    AgentOutput,
    AgentSpec,
    Message,
    Outcome,
    RunRecord,
    utcnow,
)
from orchestrator.models.schemas import compact
from orchestrator.state.connection import write_refusal
from workers.agent.context import JSON, FunctionContext
from workers.agent.loop import AgentEvents, AgentRun
from workers.agent.state import AgentState
from workers.agent.structured import check_answer, problems
from workers.execution.cancellation import Cancelled, CancelToken
from workers.module_scan import collect_named
from workers.providers import ModelProvider
from workers.providers.budgeted import BudgetExceeded
from workers.providers.redaction import redact
from workers.tools.runner import ToolRunner

if TYPE_CHECKING:
    from workers.kinds.children import ChildRuns

DEFAULT_KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")


@dataclass(frozen=True)
class AgentFunctions:
    """The agent functions a worker serves, and the variables holding its keys (whose values
    are redacted from a function's error).

    Parameters:
        functions: by name.
        key_variables: the environment variables that hold the worker's provider keys.
    """

    functions: dict[str, AgentFunction]
    key_variables: tuple[str, ...] = DEFAULT_KEY_VARIABLES

    @classmethod
    def from_modules(
        cls, module_names: list[str], key_variables: Iterable[str] = ()
    ) -> AgentFunctions:
        """Every ``AgentFunction`` at the top level of the named modules."""
        found = collect_named(module_names, AgentFunction, "agent functions")
        return cls(found, tuple(dict.fromkeys([*DEFAULT_KEY_VARIABLES, *key_variables])))

    @property
    def names(self) -> list[str]:
        return sorted(self.functions)

    def secrets(self) -> list[str]:
        """The keys this worker holds now."""
        return [os.environ.get(name, "") for name in self.key_variables]


@dataclass(frozen=True)
class FunctionCall:
    """What an agent function runs with, besides its context: the member and its start."""

    spec: AgentSpec
    prompt: str | None
    context: list[Message]
    item: object
    run_id: str
    member: str
    name: str


def run_function_agent(
    functions: AgentFunctions,
    call: FunctionCall,
    *,
    cancel: CancelToken,
    events: AgentEvents,
    tools: ToolRunner,
    provider_for: Callable[[str], ModelProvider],
    guard: Callable[[], None],
    resume: AgentCheckpoint | None = None,
    checkpoint: Callable[[AgentCheckpoint], object] | None = None,
    children: ChildRuns | None = None,
) -> AgentRun:
    """Run the agent function ``call.spec.agent`` names on the member's prompt (the last
    message of its context when it has none) and turn what it does into the member's output,
    new messages (the prompt and the answer) and record (see the module docstring)."""
    spec = call.spec
    clock = time.perf_counter()
    state = AgentState.resumed(resume) if resume is not None else AgentState(utcnow(), [])
    record = RunRecord(
        run_id=call.run_id,
        agent_name=call.name,
        agent_id=spec.agent_id,
        started_at=state.started_at,
        calls=state.calls,
    )
    state.calls = record.calls  # one list, kept by both
    prompt = call.prompt if call.prompt is not None else _last_text(call.context)
    new_messages = [Message(role="user", content=prompt)] if call.prompt is not None else []

    def finish(
        outcome: Outcome, answer: str = "", error: str | None = None, data: JsonValue = None
    ) -> AgentRun:
        ended = utcnow()
        record.ended_at, record.outcome = ended, outcome
        output = AgentOutput(
            name=call.name,
            answer=answer,
            outcome=outcome,
            error=error,
            turns=state.turns,
            tool_calls=state.tool_calls,
            tokens=state.usage,
            started_at=state.started_at,
            ended_at=ended,
            duration_ms=(time.perf_counter() - clock) * 1000,
            tools_used=state.tools_used,
            data=data,
        )
        if outcome == "ok":
            new_messages.append(Message(role="assistant", content=answer))
        return AgentRun(output, new_messages, [*call.context, *new_messages], record)

    function = functions.functions.get(spec.agent or "")
    if function is None:
        served = ", ".join(functions.names) or "none"
        return finish("error", error=f"agent function {spec.agent!r} is not served here ({served})")
    try:
        provider = provider_for(spec.model.provider)
    except Exception as missing:
        return finish("error", error=f"{type(missing).__name__}: {missing}")
    context = FunctionContext(
        spec=spec,
        run_id=call.run_id,
        member=call.member,
        item=call.item,
        cancel=cancel,
        guard=guard,
        events=events,
        tools=tools,
        provider=provider,
        scope=f"{call.run_id}/{call.member}",
        state=state,
        save=checkpoint,
        resumed=resume.state if resume is not None else None,
        children=children,
    )
    try:
        value = _call(function, context, prompt, children)
    except Cancelled as stop:
        return _stopped(finish, cancel, stop)
    except BudgetExceeded as denied:
        return finish("skipped" if state.turns == 0 else "error", error=str(denied))
    except Exception as failure:
        if write_refusal(failure) is not None:
            raise  # Redis is full: no reason for the member to fail (see member.py)
        return finish("error", error=redact(f"{type(failure).__name__}: {failure}",
                                            functions.secrets()))  # fmt: skip
    if cancel.cancelled:  # the function caught the stop: the member still ends stopped
        return _stopped(finish, cancel, Cancelled(cancel.reason))
    schema = spec.output_json_schema
    if isinstance(value, str):
        if schema is None:
            return finish("ok", answer=value)
        checked = check_answer(schema, value)
        if not checked.valid:
            return finish("error", error=f"output_schema: {problems(checked)}")
        return finish("ok", answer=checked.answer, data=checked.data)
    try:
        data = JSON.validate_python(value)
    except ValidationError:
        return finish("error", error=f"the agent function returned a {type(value).__name__}, "
                                     "not a string or a JSON value")  # fmt: skip
    if schema is not None:
        checked = check_answer(schema, compact(data))
        if not checked.valid:
            return finish("error", error=f"output_schema: {problems(checked)}")
    return finish("ok", answer=compact(data), data=data)


def _call(
    function: AgentFunction, context: FunctionContext, prompt: str, children: ChildRuns | None
) -> object:
    """The function's value; then the children it left running (started by an earlier
    execution and never asked for again, or abandoned on an error) are cancelled."""
    try:
        return function(context, prompt)
    finally:
        if children is not None:
            children.close()


def _stopped(finish: Callable[..., AgentRun], cancel: CancelToken, stop: Cancelled) -> AgentRun:
    error = f"cancelled: {stop}" if cancel.outcome == "cancelled" else str(stop)
    return finish(cancel.outcome, error=error)


def _last_text(context: list[Message]) -> str:
    return context[-1].content if context else ""
