"""Agent tasks (queue ``agents``): chord members and final agents."""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.exceptions import Ignore

from orchestrator.models import AgentOutput
from orchestrator.state.keys import FINAL_MEMBER
from workers.app import app, runtime
from workers.coordination import advance
from workers.coordination.canvas import member_result
from workers.execution.lanes import (
    MAX_OUTAGE_RETRIES,
    REDIS_OUTAGES,
    RETRY_BACKOFF_MAX_S,
    riding_refusals,
    run_batch,
    run_lane,
)
from workers.execution.liveness import new_token
from workers.execution.member import execute_member


def _retry_after_outage(task: Task, outage: Exception, **kwargs: Any) -> Exception:
    """A retry of this delivery after Redis stayed away longer than a command waits for it,
    with exponential backoff. A retry is not a chord result, so the chord still counts the
    member once, when it ends."""
    countdown = min(2**task.request.retries, RETRY_BACKOFF_MAX_S)
    retry: Exception = task.retry(
        exc=outage, kwargs=kwargs, countdown=countdown, max_retries=MAX_OUTAGE_RETRIES
    )
    return retry  # task.retry raises it itself; the caller's raise is for the reader


def _fresh_token() -> str:
    return new_token(runtime.store.client)


# Members report progress through their leases and events; the result backend's STARTED state
# would be one more write per member that nothing reads (Flower follows worker events). Nor is
# their result stored: with ``ignore_result`` the backend still counts it in the chord (and
# hands it to the body), and a big run leaves no task result per member behind.
@app.task(name="tasks.agents.run_member", bind=True, track_started=False, ignore_result=True)
def run_member(self: Task, run_id: str, index: int, token: str | None = None) -> dict[str, Any]:
    """Member ``index`` of a run (a mapper, a branch, a single agent); its output is stored
    with the run and the chord gets a reference to it. A short member goes on with the
    members its completion lets in (``workers/execution/lanes.py``). ``token``: the lease token of
    the
    earlier attempt of this delivery (a retry after a Redis outage), which this attempt takes
    over if it still holds the member. Each attempt claims with a token of its own, so that a
    second copy of a retry's message (a broker's redelivery) finds the member busy."""
    previous, token = token, new_token(runtime.store.client)

    def attempt(attempt_token: str, attempt_previous: str | None) -> AgentOutput | None:
        nonlocal token
        token = attempt_token
        lane_s = runtime.settings.lane_s
        return run_lane(runtime.member, run_id, index, lane_s, token, previous=attempt_previous)

    try:
        # A full Redis is waited out here, holding the message: a retry would be a publish,
        # which a full Redis refuses too.
        output = riding_refusals(
            attempt, token, previous, _fresh_token, f"run {run_id} member {index}"
        )
    except REDIS_OUTAGES as outage:
        raise _retry_after_outage(self, outage, token=token) from outage
    if output is None:
        # Another live execution holds this member: drop this copy without a result, so the
        # chord counts the member once, with the output of the execution that ran it.
        raise Ignore()
    return member_result(index, output)


@app.task(name="tasks.agents.run_members", track_started=False, ignore_result=True)
def run_members(run_id: str, indices: list[int]) -> None:
    """Several members of a run sharing one message, each on a thread of its own; each is
    counted in the run's chord as it ends (``workers/execution/lanes.py``)."""
    run_batch(runtime.member, run_id, indices, runtime.settings.lane_s)


# Its output is kept with the run (the result reads it there): no task result is stored.
@app.task(name="tasks.agents.run_final", bind=True, ignore_result=True)
def run_final(self: Task, run_id: str, token: str | None = None) -> dict[str, Any]:
    """The final agent of a run (a reducer, a judge); ends the run with its answer. ``token``:
    as for ``run_member``."""
    runs = runtime.store
    previous, token = token, new_token(runs.client)

    def attempt(attempt_token: str, attempt_previous: str | None) -> AgentOutput | None:
        nonlocal token
        token = attempt_token
        output = execute_member(
            runtime.member, run_id, FINAL_MEMBER, token=token, previous=attempt_previous
        )
        if output is not None:
            advance.after_final(app, runs, run_id, output)
        return output

    try:
        output = riding_refusals(attempt, token, previous, _fresh_token, f"run {run_id} final")
    except REDIS_OUTAGES as outage:
        raise _retry_after_outage(self, outage, token=token) from outage
    if output is None:
        raise Ignore()
    return output.model_dump(mode="json")
