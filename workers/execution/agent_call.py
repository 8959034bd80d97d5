"""How a member execution runs an agent: the built-in loop for a declarative spec, the agent
function a spec names (``AgentSpec.agent``) otherwise, both under what the execution holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.models import AgentCheckpoint, AgentSpec
from orchestrator.plans import ExecutionPlan
from workers.agent.functions import FunctionCall, run_function_agent
from workers.agent.loop import AgentEvents, AgentRun, run_agent
from workers.agent.plan_use import effective_parallel_groups
from workers.cache.governed import CacheContext
from workers.execution.cancellation import CancelToken
from workers.kinds.base import AgentCall, MemberIdentity, MemberStart
from workers.kinds.children import ChildRuns
from workers.providers import ModelProvider
from workers.providers.budgeted import CallBudget

if TYPE_CHECKING:
    from workers.execution.member import MemberRuntime


@dataclass(frozen=True)
class Held:
    """What a member execution holds while its agents run.

    Parameters:
        run_id, member, token: the member and the execution's lease token.
        identity: how the member is named.
        cancel: the execution's token.
        guard: the lease guard.
        budget: its use of the run's ledger (None: the run has no token or cost limit).
        plan: the agent's plan, when its plan mode uses one.
    """

    run_id: str
    member: str
    token: str
    identity: MemberIdentity
    cancel: CancelToken
    guard: Callable[[], None]
    budget: CallBudget | None
    plan: ExecutionPlan | None


def agent_call(runtime: MemberRuntime, spec: AgentSpec, held: Held) -> AgentCall:
    """Runs ``spec`` in the execution ``held`` describes (``Execution.agent``)."""
    cache_context = CacheContext(spec.agent_id, spec.cache_mode, f"{held.run_id}/{held.member}")

    def provider_for(provider: str) -> ModelProvider:
        return runtime.provider_for(provider, held.budget, cache_context)

    def agent(
        start: MemberStart,
        *,
        name: str,
        events: AgentEvents,
        resume: AgentCheckpoint | None = None,
        checkpoint: Callable[[AgentCheckpoint], object] | None = None,
    ) -> AgentRun:
        if spec.agent is not None:
            call = FunctionCall(
                spec, start.prompt, start.context, start.item, held.run_id, held.member, name
            )
            # The member's own agent may start child runs; a partial reducer (no checkpoint)
            # may not: several run at once in one member, and each would end the others'.
            children = None
            if checkpoint is not None:
                children = ChildRuns(
                    runtime, held.run_id, held.member, held.token, held.identity,
                    held.cancel, held.guard,
                )  # fmt: skip
            return run_function_agent(
                runtime.functions,
                call,
                cancel=held.cancel,
                events=events,
                tools=runtime.tools,
                provider_for=provider_for,
                guard=held.guard,
                resume=resume,
                checkpoint=checkpoint,
                children=children,
            )
        observing = spec.plan_mode == "observe_only"
        parallel_groups = [] if observing else effective_parallel_groups(spec, held.plan)
        return run_agent(
            spec,
            start.prompt,
            context=start.context,
            run_id=held.run_id,
            name=name,
            cancel=held.cancel,
            events=events,
            tools=runtime.tools,
            provider_for=provider_for,
            resume=resume,
            checkpoint=checkpoint,
            guard=held.guard,
            call_scope=f"{held.run_id}/{held.member}",
            parallel_groups=parallel_groups,
        )

    return agent
