"""Agent functions: your own agent code, run as a member under every guarantee of the runtime.

A function decorated with ``@agent`` in a module the workers serve (``ORCHESTRATOR_MODULES``)
is registered under its name; an ``AgentSpec`` names it (``AgentSpec(name="t", agent="triage")``)
and can then be a mapper, a reducer, a branch, a judge or a single agent. The function gets an
``AgentContext`` and the member's prompt, and returns the answer: a string, or any JSON value
(then also the output's ``data``). Nothing a client sends is imported: it names a function the
workers registered, and an unknown name is refused at submit.

Everything the function does through its context goes the way the built-in agent loop goes:
``ctx.complete`` is one model call under the run's budget (reserved before, settled after),
the shared provider pools, the cache governor, the call's time limit, cancel (a call in flight
is aborted) and the lease guard, recorded and reported like a turn of the loop.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, overload

if TYPE_CHECKING:
    from orchestrator.models import AgentSpec, Budget, Message
    from orchestrator.models.results import AgentRunResult, MapReduceResult, ParallelResult

AGENT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
"""What a registered agent function may be called: a plain name, never a path."""


class AgentContext(Protocol):
    """What an agent function may use of the member it runs as; nothing else escapes it.

    Attributes:
        spec: the member's agent spec (its model is the model of ``complete``).
        item: a mapper's item as the mapper reads it (a string as it is, any other JSON value
            as its compact JSON), else None.
        run_id: the run the member belongs to.
        member: the member (an item index, or ``final`` for a reducer or a judge).
        cancelled: whether the member was stopped (cancel, deadline, time limit, lost lease);
            every later call of the context raises, so a long loop of your own should look.
        resumed_state: the last state given to ``checkpoint`` by an earlier execution of this
            member (a redelivery after its worker died), else None.
    """

    @property
    def spec(self) -> AgentSpec: ...

    @property
    def item(self) -> Any: ...

    @property
    def run_id(self) -> str: ...

    @property
    def member(self) -> str: ...

    @property
    def cancelled(self) -> bool: ...

    @property
    def resumed_state(self) -> Any: ...

    def complete(
        self,
        prompt: str | Sequence[Message | dict[str, Any]],
        *,
        instructions: str | None = None,
        max_output_tokens: int | None = None,
        **options: Any,
    ) -> str:
        """One model call with the spec's model: ``prompt`` as a user message (or the
        messages given), after the spec's instructions (or ``instructions``). ``options`` add
        to the model's options (``temperature``...); ``max_output_tokens`` lowers the output
        limit the budget reserves for. Returns the text. Raises when the budget cannot fit
        the call, when the member is stopped, and when the provider fails (after its
        retries): let these end the member, as the built-in loop does."""
        ...

    def call_tool(self, name: str, /, **arguments: Any) -> str:
        """Call tool ``name`` (one of the spec's ``tools``) under the spec's tool policy and
        the tool's shared limits and timeout; returns its result as the model would read it.
        Raises ``ToolCallError`` when the call fails or times out."""
        ...

    def checkpoint(self, state: Any) -> None:
        """Keep ``state`` (a JSON value) for this member: an execution that takes the member
        over after its worker died starts with it as ``resumed_state``."""
        ...

    def pydantic_ai_model(self) -> Any:
        """A pydantic-ai ``Model`` whose requests are calls of this context (``complete``'s
        path): build a pydantic-ai ``Agent`` on it. Needs ``agent-orchestrator[pydantic-ai]``."""
        ...

    def openai_agents_model(self) -> Any:
        """An OpenAI Agents SDK ``Model`` whose requests are calls of this context: give it to
        an ``agents.Agent(model=...)``. Needs ``agent-orchestrator[openai-agents]``."""
        ...

    def map_reduce(
        self,
        task: str,
        items: Sequence[Any],
        mapper: AgentSpec | dict[str, Any],
        reducer: AgentSpec | dict[str, Any],
        max_concurrent: int = 5,
        budget: Budget | dict[str, Any] | None = None,
        deadline_s: float | None = None,
    ) -> MapReduceResult:
        """A child map-reduce of this member's run; blocks until it ends and returns its result
        (see the recursive fan-out guide: its spend is the parent's, it is cancelled with it)."""
        ...

    def parallel_branches(
        self,
        configs: Sequence[AgentSpec | dict[str, Any]],
        prompt: str | None = None,
        strategy: str = "pick_first",
        judge: AgentSpec | dict[str, Any] | None = None,
        max_concurrent: int | None = None,
        budget: Budget | dict[str, Any] | None = None,
        deadline_s: float | None = None,
    ) -> ParallelResult:
        """A child parallel-branches run; blocks until it ends and returns its result."""
        ...

    def run_agent(
        self,
        spec: AgentSpec | dict[str, Any],
        prompt: str,
        budget: Budget | dict[str, Any] | None = None,
        deadline_s: float | None = None,
    ) -> AgentRunResult:
        """A child single-agent run; blocks until it ends and returns its result."""
        ...


AgentCallable = Callable[[AgentContext, str], Any]


class ToolCallError(Exception):
    """A tool call of an agent function failed; the message is what the model would read."""


@dataclass(frozen=True)
class AgentFunction:
    """A registered agent function; calling it calls the function."""

    name: str
    function: AgentCallable

    def __call__(self, ctx: AgentContext, prompt: str) -> Any:
        return self.function(ctx, prompt)


@overload
def agent(function: AgentCallable, /) -> AgentFunction: ...


@overload
def agent(*, name: str | None = None) -> Callable[[AgentCallable], AgentFunction]: ...


def agent(
    function: AgentCallable | None = None, /, *, name: str | None = None
) -> AgentFunction | Callable[[AgentCallable], AgentFunction]:
    """Register ``function`` (``(ctx, prompt) -> str | JSON value``) as an agent function
    named ``name`` (default: the function's name).

    Used bare (``@agent``) or with a name (``@agent(name="triage")``); the module must be
    listed in the workers' ``ORCHESTRATOR_MODULES``.
    """

    def register(target: AgentCallable) -> AgentFunction:
        chosen = name or target.__name__
        if not AGENT_NAME.match(chosen):
            raise ValueError(f"agent name {chosen!r} must match {AGENT_NAME.pattern}")
        return AgentFunction(chosen, target)

    return register(function) if function is not None else register
