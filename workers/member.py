"""One member execution of a capped chord: claim the lease, run the agent, store the output
once and let the next members in."""

from __future__ import annotations

from uuid import uuid4

from celery import Celery

from orchestrator.events import AgentEnd, AgentStart
from orchestrator.keys import REDUCER_MEMBER
from orchestrator.models import AgentOutput
from orchestrator.run_store import RunStore, member_name
from workers.agent_loop import run_agent
from workers.cancellation import CancelToken
from workers.coordinator import apply_admission
from workers.leases import LeaseKeeper


def execute_member(
    app: Celery, store: RunStore, keeper: LeaseKeeper, run_id: str, member: str
) -> AgentOutput | None:
    """Run member ``member`` (an item index, or ``reduce``) of a map-reduce run.

    Returns its output (the stored one for a late duplicate delivery, which never calls the
    model again), or None when another live execution holds the member: the caller drops
    this delivery.
    """
    request = store.request(run_id)
    is_reducer = member == REDUCER_MEMBER
    spec = request.reducer if is_reducer else request.mapper
    name = member_name(spec.name, member)
    index = None if is_reducer else int(member)
    token = uuid4().hex
    claim = store.claim(run_id, member, token, AgentStart(run_id=run_id, name=name, index=index))
    if claim.action == "busy":
        return None
    if claim.action == "done":
        return AgentOutput.model_validate_json(claim.input)
    if claim.action == "cancelled":
        output = AgentOutput.not_run(name, "cancelled", f"cancelled: {claim.input}")
    else:
        prompt = (
            claim.input if is_reducer else f"{request.task}\n\nProcess this item: {claim.input}"
        )
        cancel = CancelToken()
        with keeper.hold(run_id, member, token, cancel):
            try:
                output = run_agent(spec, prompt, run_id=run_id, name=name, cancel=cancel).output
            except Exception as bug:  # a member never raises: it ends as an error at its index
                error = f"internal error: {type(bug).__name__}: {bug}"
                output = AgentOutput.not_run(name, "error", error)
    event = AgentEnd(
        run_id=run_id,
        name=name,
        index=index,
        outcome=output.outcome,
        usage=output.tokens,
        error=output.error,
    )
    completion = store.complete(run_id, member, output, event)
    apply_admission(app, store, run_id, completion.admission)
    return completion.output
