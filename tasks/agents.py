"""Agent tasks (queue ``agents``): chord members and reducers."""

from __future__ import annotations

from typing import Any

from celery.exceptions import Ignore
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from workers.app import app
from workers.canvas import member_result
from workers.coordinator import finish_map_reduce
from workers.member import execute_member
from workers.runtime import lease_keeper, store

# A Redis outage retries the member with backoff; a retry is not a chord result, so the chord
# still counts the member once, when it ends.
RETRY_ON_REDIS = {
    "autoretry_for": (RedisConnectionError, RedisTimeoutError),
    "retry_backoff": True,
    "retry_backoff_max": 30,
    "max_retries": 20,
}


@app.task(name="tasks.agents.run_member", **RETRY_ON_REDIS)
def run_member(run_id: str, index: int) -> dict[str, Any]:
    """Mapper ``index`` of a map-reduce run; its ``AgentOutput`` is stored with the run and the
    chord gets a reference to it."""
    output = execute_member(app, store(), lease_keeper(), run_id, str(index))
    if output is None:
        # Another live execution holds this member: drop this copy without a result, so the
        # chord counts the member once, with the output of the execution that ran it.
        raise Ignore()
    return member_result(index, output)


@app.task(name="tasks.agents.run_reducer", **RETRY_ON_REDIS)
def run_reducer(run_id: str) -> dict[str, Any]:
    """The reducer of a map-reduce run; ends the run with its answer."""
    output = execute_member(app, store(), lease_keeper(), run_id, "reduce")
    if output is None:
        raise Ignore()
    finish_map_reduce(store(), run_id, reducer_output=output)
    return output.model_dump(mode="json")
