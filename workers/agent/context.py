"""``AgentContext`` on a worker: what an agent function's calls go through.

Every model call of a function (``complete``, and the framework adapters' requests) goes to
``call_model``, which calls the same provider chain as the built-in loop (the cache governor,
the shared pools, the budget's reserve and settle, retries, the call's time limit, cancel of a
call in flight) after the same checks (the cancel token, the lease guard), and records and
reports it as a turn of the loop: its usage counts in the output's ``tokens``, ``turns``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import JsonValue, TypeAdapter

from orchestrator.agents import ToolCallError
from orchestrator.models import (
    AgentCheckpoint,
    AgentSpec,
    CallRecord,
    Message,
    ModelConfig,
    ToolCall,
    Usage,
    utcnow,
)
from orchestrator.state.connection import write_refusal
from orchestrator.tools import ToolInfo
from workers import spans
from workers.agent.state import AgentState
from workers.execution.cancellation import Cancelled, CancelToken
from workers.providers import ModelProvider, ModelResponse
from workers.providers.budgeted import BudgetExceeded
from workers.tools.runner import ToolEvents, ToolRunner

if TYPE_CHECKING:
    from workers.agent.loop import AgentEvents
    from workers.kinds.children import ChildRuns

T = TypeVar("T")
JSON: TypeAdapter[JsonValue] = TypeAdapter(JsonValue)


def off_loop(work: Callable[[], T]) -> T:
    """``work()``, in a thread of its own when this thread runs an event loop (an async
    function of a framework calling the context): the provider chain and the tool runner run
    event loops of their own, which cannot start inside a running one."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return work()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ao-ctx") as pool:
        return pool.submit(work).result()


@dataclass
class FunctionContext:
    """The ``AgentContext`` of one execution of an agent function.

    Parameters:
        spec: the member's agent.
        run_id, member: the member.
        item: the map-reduce item of a mapper, else None.
        cancel: the execution's token (cancel, deadline, time limit, lost lease).
        guard: raises ``Cancelled`` when the member may make no further call.
        events: where turns and tool calls are reported.
        tools: the worker's tool runner.
        provider: the spec's provider, behind the chain of wrappers the loop uses.
        scope: the tool calls' idempotency scope (``run_id/member``).
        state: the run's accounting (resumed from a checkpoint, when there is one).
        save: keeps a checkpoint of the member (None: not checkpointed, a partial reducer).
        resumed: the state the last checkpoint held, if the member resumes.
        children: starts and waits on child runs (None where a member cannot have any).
    """

    spec: AgentSpec
    run_id: str
    member: str
    item: Any
    cancel: CancelToken
    guard: Callable[[], None]
    events: AgentEvents
    tools: ToolRunner
    provider: ModelProvider
    scope: str
    state: AgentState
    save: Callable[[AgentCheckpoint], object] | None = None
    resumed: Any = None
    children: ChildRuns | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def cancelled(self) -> bool:
        return self.cancel.cancelled

    @property
    def resumed_state(self) -> Any:
        return self.resumed

    def model_config(self, max_output_tokens: int | None = None, **options: Any) -> ModelConfig:
        """The spec's model with ``options`` added (validated as a spec's would be: no option
        that sets an output limit behind the budget, no endpoint, no request rewrite)."""
        model = self.spec.model
        merged = {**model.options, **options}
        if self.spec.thinking:
            merged.setdefault("thinking", self.spec.thinking)
        fields = {**model.model_dump(), "options": merged}
        if max_output_tokens is not None:
            fields["max_output_tokens"] = max_output_tokens
        return ModelConfig.model_validate(fields)

    def complete(
        self,
        prompt: str | Sequence[Message | dict[str, Any]],
        *,
        instructions: str | None = None,
        max_output_tokens: int | None = None,
        **options: Any,
    ) -> str:
        system = self.spec.instructions if instructions is None else instructions
        messages = [Message(role="system", content=system)] if system else []
        if isinstance(prompt, str):
            messages.append(Message(role="user", content=prompt))
        else:
            messages += [Message.model_validate(message) for message in prompt]
        config = self.model_config(max_output_tokens, **options)
        return self.call_model(config, messages, []).text

    def call_model(
        self, config: ModelConfig, messages: list[Message], tools: list[ToolInfo]
    ) -> ModelResponse:
        """One model call through the provider chain, recorded as a turn (see the module)."""
        return off_loop(lambda: self._call_model(config, messages, tools))

    def _call_model(
        self, config: ModelConfig, messages: list[Message], tools: list[ToolInfo]
    ) -> ModelResponse:
        call = CallRecord(kind="model", name=config.model, started_at=utcnow())
        with self._lock:
            turn = self.state.turns + 1
            self.state.calls.append(call)
        try:
            self.cancel.check()
            self.guard()
            response = self.provider.complete(config, messages, self.cancel, tools)
        except Cancelled as stop:
            call.ended_at, call.status = utcnow(), "cancelled"
            self.events.model_turn(turn, call.started_at, Usage(), [], str(stop), False)
            raise
        except BudgetExceeded as denied:
            with self._lock:  # not made: no call of the record
                self.state.calls.remove(call)
            spans.budget_denied(str(denied))
            self.events.model_turn(turn, call.started_at, Usage(), [], str(denied), False)
            raise
        except Exception as failure:
            if write_refusal(failure) is not None:
                raise
            call.ended_at, call.status = utcnow(), "error"
            call.error = f"{type(failure).__name__}: {failure}"
            self.events.model_turn(turn, call.started_at, Usage(), [], call.error, False)
            raise
        call.started_at = response.started_at or call.started_at
        call.ended_at, call.usage = response.ended_at or utcnow(), response.usage
        call.surface, call.request_digest = response.surface, response.request_digest
        call.prompt, call.cache = response.prompt, response.cache
        with self._lock:
            self.state.usage = self.state.usage + response.usage
            self.state.turns += 1
            turn = self.state.turns
        names = [tool_call.name for tool_call in response.tool_calls]
        self.events.model_turn(
            turn, call.started_at, response.usage, names, None, False, call.ended_at, response.cache
        )
        return response

    def call_tool(self, name: str, /, **arguments: Any) -> str:
        if name not in self.spec.tools:
            offer = ", ".join(self.spec.tools) or "none"
            raise ToolCallError(f"tool {name!r} is not one of the agent's tools ({offer})")
        self.cancel.check()
        self.guard()
        with self._lock:
            number = self.state.tool_calls
            self.state.tool_calls += 1
        # The n-th call of the member has the same id in every execution of it: a call
        # repeated on resume has the idempotency key it had.
        call = ToolCall(id=f"fn_{number}", name=name, arguments=arguments)
        events: ToolEvents = self.events
        policy = self.spec.tool_policy
        (result,) = off_loop(
            lambda: self.tools.run(
                [call], self.spec.tools, policy, self.cancel, events, scope=self.scope
            )
        )
        record = CallRecord(
            kind="tool",
            name=name,
            started_at=result.started_at or utcnow(),
            ended_at=result.ended_at,
            status=result.status,
            error=None if result.ok else result.content,
        )
        with self._lock:
            self.state.calls.append(record)
            if name not in self.state.tools_used:
                self.state.tools_used.append(name)
        self.cancel.check()
        if not result.ok:
            raise ToolCallError(result.content)
        return result.content

    def checkpoint(self, state: Any) -> None:
        value = JSON.validate_python(state)
        self.resumed = value
        if self.save is None:
            return
        with self._lock:
            saved = self.state.checkpoint().model_copy(update={"state": value}, deep=True)
        self.save(saved)

    def pydantic_ai_model(self) -> Any:
        from workers.agent.frameworks.pydantic_ai import OrchestratorModel

        return OrchestratorModel(self)

    def openai_agents_model(self) -> Any:
        from workers.agent.frameworks.openai_agents import OrchestratorAgentsModel

        return OrchestratorAgentsModel(self)

    def _children(self) -> ChildRuns:
        if self.children is None:
            raise RuntimeError("this member cannot start child runs (a partial reducer)")
        return self.children

    def map_reduce(self, *args: Any, **kwargs: Any) -> Any:
        return self._children().map_reduce(*args, **kwargs)

    def parallel_branches(self, *args: Any, **kwargs: Any) -> Any:
        return self._children().parallel_branches(*args, **kwargs)

    def run_agent(self, *args: Any, **kwargs: Any) -> Any:
        return self._children().run_agent(*args, **kwargs)
