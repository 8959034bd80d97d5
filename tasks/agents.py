"""Agent tasks (queue ``agents``): chord members and final agents."""

from __future__ import annotations

from typing import Any

from celery.exceptions import Ignore
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator.keys import FINAL_MEMBER
from workers.app import app
from workers.canvas import member_result
from workers.kinds import kind_of
from workers.member import execute_member
from workers.runtime import member_runtime, store

# A Redis outage retries the member with backoff; a retry is not a chord result, so the chord
# still counts the member once, when it ends.
RETRY_ON_REDIS = {
    "autoretry_for": (RedisConnectionError, RedisTimeoutError),
    "retry_backoff": True,
    "retry_backoff_max": 30,
    "max_retries": 20,
}


# Members report progress through their leases and events; the result backend's STARTED state
# would be one more write per member that nothing reads (Flower follows worker events). Nor is
# their result stored: with ``ignore_result`` the backend still counts it in the chord (and
# hands it to the body), and a big run leaves no task result per member behind.
@app.task(name="tasks.agents.run_member", track_started=False, ignore_result=True, **RETRY_ON_REDIS)
def run_member(run_id: str, index: int) -> dict[str, Any]:
    """Member ``index`` of a run (a mapper, a branch, a single agent); its output is stored
    with the run and the chord gets a reference to it."""
    output = execute_member(member_runtime(app), run_id, str(index))
    if output is None:
        # Another live execution holds this member: drop this copy without a result, so the
        # chord counts the member once, with the output of the execution that ran it.
        raise Ignore()
    return member_result(index, output)


# Its output is kept with the run (the result reads it there): no task result is stored.
@app.task(name="tasks.agents.run_final", ignore_result=True, **RETRY_ON_REDIS)
def run_final(run_id: str) -> dict[str, Any]:
    """The final agent of a run (a reducer, a judge); ends the run with its answer."""
    runs = store()
    output = execute_member(member_runtime(app), run_id, FINAL_MEMBER)
    if output is None:
        raise Ignore()
    kind_of(runs.request(run_id)).after_final(app, runs, run_id, output)
    return output.model_dump(mode="json")
