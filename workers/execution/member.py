"""One member execution of a capped chord: claim the lease, run the agent, store the output
once and let the next members in."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Protocol

from celery import Celery
from opentelemetry.trace import Span

from orchestrator.models import AgentOutput, Message, RunRecord
from orchestrator.models.requests import RunRequest
from orchestrator.plans import ExecutionPlan
from orchestrator.state.budget import RunBudget
from orchestrator.state.children import RunFamily
from orchestrator.state.connection import wait_out_refusals, write_refusal
from orchestrator.state.events import AgentEnd, AgentStart
from orchestrator.state.store import Completion, RunStore
from workers import spans
from workers.agent.functions import AgentFunctions
from workers.agent.plan_cache import PlanCache
from workers.cache.governed import CacheContext
from workers.coordination import advance
from workers.coordination.steps import apply_admission
from workers.execution.agent_call import Held, agent_call
from workers.execution.cancellation import CancelToken
from workers.execution.leases import LeaseKeeper
from workers.execution.liveness import holder_gone, new_token
from workers.execution.member_events import MemberEvents
from workers.execution.records import ship_record
from workers.identity import node_name, process_id
from workers.kinds import Execution, kind_of
from workers.providers import ModelProvider
from workers.providers.budgeted import CallBudget
from workers.tools.runner import ToolRunner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MemberRuntime:
    """What a member execution uses of its worker: the store, leases, tools and providers."""

    app: Celery
    store: RunStore
    keeper: LeaseKeeper
    tools: ToolRunner
    provider_for: Callable[[str, CallBudget | None, CacheContext], ModelProvider]
    plans: PlanCache[ExecutionPlan]
    functions: AgentFunctions


class NextMember(Protocol):
    """Where a member execution may hand the member its completion let in (a lane)."""

    next: int | None

    def wants_next(self, member_s: float) -> bool: ...


def execute_member(
    runtime: MemberRuntime,
    run_id: str,
    member: str,
    token: str | None = None,
    lane: NextMember | None = None,
    previous: str | None = None,
) -> AgentOutput | None:
    """Run member ``member`` (an item index, or ``final``) of a run.

    ``token`` is the lease token to claim with (a new one when None); ``previous`` the token
    of an earlier attempt of the same delivery (a retry after a Redis outage), which ended:
    the member is taken over from it at once if it still holds it. With ``lane``, a member let
    in by this one's completion may be kept for the lane instead of published
    (``workers/execution/lanes.py``).

    Returns its output (the stored one for a late duplicate delivery, which never calls the
    model again), or None when this delivery must be dropped without a result: another live
    execution holds the member, this execution lost its lease while it ran (its result is
    discarded), or the run no longer exists.
    """
    # The span is named after the agent once the request is read.
    with spans.run_span(runtime.store, run_id, "invoke_agent") as span:
        try:
            token = token or new_token(runtime.store.client)
            return _execute(runtime, run_id, member, span, token, lane, previous or "")
        finally:
            runtime.keeper.forget_reception(run_id, member)


def _execute(
    runtime: MemberRuntime,
    run_id: str,
    member: str,
    span: Span,
    token: str,
    lane: NextMember | None,
    previous: str,
) -> AgentOutput | None:
    app, store = runtime.app, runtime.store
    try:
        request = store.request(run_id)
    except LookupError:
        return None  # the run is gone (flushed, or lost with a Redis that kept nothing)
    except ValueError as unreadable:
        # A request this worker cannot read cannot run; the watchdog ends the run.
        log.error("run %s: unreadable request: %s", run_id, unreadable)
        return None
    kind = kind_of(request)
    identity = kind.identity(request, member)
    spec = kind.spec(request, member, store.settings)
    conversation = getattr(request, "session_id", None)
    span.update_name(f"invoke_agent {identity.name}")
    span.set_attributes(spans.agent_attributes(spec, identity.name, member, conversation))
    started = time.monotonic()
    start_event = AgentStart(run_id=run_id, worker=process_id(), **identity.event_fields())
    claim = store.claim(run_id, member, token, spec.timeout_s, start_event, previous)
    if claim.action == "busy" and claim.input and holder_gone(store.client, claim.input):
        # A delivery that finds its member held by a process that is gone (RabbitMQ delivers
        # a dead worker's messages again at once) takes it over now, not after the lease.
        claim = store.claim(run_id, member, token, spec.timeout_s, start_event, claim.input)
    span.set_attribute("orchestrator.claim", claim.action)
    if claim.action in ("busy", "gone"):
        return None
    if claim.action == "done":
        return AgentOutput.model_validate_json(claim.input)
    if claim.taken_over:
        spans.lease_taken_over(member, resumed=claim.checkpoint is not None)
    events = MemberEvents(store, run_id, identity)
    new_messages: list[Message] = []
    record: RunRecord | None = None
    budget: CallBudget | None = None
    # The lease is held until the output is stored: a completion that waits for Redis (an
    # outage) must not see its member handed to another execution meanwhile.
    with ExitStack() as held:
        if claim.action == "cancelled":
            output = AgentOutput.not_run(identity.name, "cancelled", f"cancelled: {claim.input}")
        elif claim.action == "timeout":
            error = f"timed out after {spec.timeout_s:g} s"
            output = AgentOutput.not_run(identity.name, "error", error)
        else:
            cancel = CancelToken()
            lease = held.enter_context(
                runtime.keeper.hold(
                    run_id, member, token, cancel, claim.remaining_s, spec.timeout_s
                )
            )
            start = kind.start(request, member, claim.input)
            budget = _call_budget(store, request, run_id, member, token)
            plan = runtime.plans.get(spec.agent_id) if spec.plan_mode != "observe_only" else None
            held_now = Held(run_id, member, token, identity, cancel, lease.guard, budget, plan)
            agent = agent_call(runtime, spec, held_now)
            execution = Execution(
                app=app,
                store=store,
                run_id=run_id,
                member=member,
                token=token,
                worker=process_id(),
                identity=identity,
                events=events,
                resume=claim.checkpoint,
                agent=agent,
                cancel=cancel,
            )
            try:
                run = kind.run(request, member, start, execution)
                output, new_messages, record = run.output, run.new_messages, run.record
            except Exception as bug:  # a member never raises: it ends as an error at its index
                if write_refusal(bug) is not None:
                    raise  # Redis is full: no reason for the member to fail (never its output)
                error = f"internal error: {type(bug).__name__}: {bug}"
                output = AgentOutput.not_run(identity.name, "error", error)
        end = AgentEnd(
            run_id=run_id,
            outcome=output.outcome,
            usage=output.tokens,
            error=output.error,
            **identity.event_fields(),
        )
        completion = _complete(
            store,
            run_id,
            member,
            output,
            [*events.deferred, end],
            node=node_name(),
            token=token,
            messages=new_messages if kind.keeps_messages else None,
            record=record if kind.keeps_records else None,
            calls=budget.made if budget is not None else None,
        )
    spans.end_agent(span, output)
    if completion.status == "discarded":
        spans.lease_lost(member)
    took = time.monotonic() - started
    # Evidence that the run's members are short: one of them ran within the lane threshold
    # and succeeded. A member ended at its claim (timed out, cancelled) did not run, and one
    # that failed may have failed at once (a refused request): its quick end says nothing of
    # the others, so it neither keeps the next member for its thread nor batches.
    ran = claim.action not in ("cancelled", "timeout") and output.outcome == "ok"
    keep = ran and lane is not None and lane.wants_next(took)
    short = ran and took < store.settings.lane_s
    kept = apply_admission(app, store, run_id, completion.admission, keep, short)
    if lane is not None:
        lane.next = kept
    advance.after_completion(app, store, run_id, completion)
    if completion.stored and record is not None:
        # After the run's own next steps: a record is for learning, and must never hold up
        # or break a run.
        ship_record(app, record)
    return completion.output


def _complete(store: RunStore, run_id: str, member: str, *args: Any, **kwargs: Any) -> Completion:
    """``store.complete``, waiting while Redis refuses writes (it is full). The execution keeps
    its output and its lease meanwhile (a full Redis lets lease renewals through), so no other
    execution takes the member over, and its model is never called again for it."""

    def waiting(refusal: str) -> None:
        log.warning(
            "run %s member %s: Redis refuses writes (%s); its output is kept until Redis has room",
            run_id,
            member,
            refusal,
        )

    return wait_out_refusals(lambda: store.complete(run_id, member, *args, **kwargs), waiting)


def _call_budget(
    store: RunStore, request: RunRequest, run_id: str, member: str, token: str
) -> CallBudget | None:
    """The execution's use of the run's ledger; none for a run without a token or cost limit,
    of its own or of a run above it (a child run), whose calls then cost no round trips to
    reserve and settle."""
    limits = request.budget
    above_tokens, above_cost = RunFamily(store.client).ancestor_limits(run_id)
    limited = limits.max_tokens is not None or limits.max_cost_usd is not None
    if not (limited or above_tokens or above_cost):
        return None
    cost_limited = limits.max_cost_usd is not None or above_cost
    return CallBudget(RunBudget(store.client, run_id), member, token, cost_limited)
