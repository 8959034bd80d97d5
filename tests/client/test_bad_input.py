"""Bad input is refused with a clear error before anything is dispatched."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from orchestrator import Client, InvalidRunError, RunNotFoundError
from orchestrator.local import LocalRedis
from tests.helpers import items, scripted, stored_runs


@pytest.fixture
def bare_client(redis_server: LocalRedis, worker_env: dict[str, str]) -> Client:
    """A client with no workers: nothing it submits could run anyway."""
    return Client(redis_url=redis_server.url)


def dispatched(server: LocalRedis) -> tuple[set[bytes], int]:
    """The runs that exist and how many messages wait on the coordinator queue. Compared by
    the runs that are new: an earlier test's run may still add or drop keys of its own."""
    state = redis.Redis.from_url(server.url)
    return stored_runs(state), state.llen("coordinator")


def submit(client: Client, **overrides: Any) -> None:
    arguments: dict[str, Any] = {
        "task": "Task",
        "items": items(3),
        "mapper": scripted("mapper"),
        "reducer": scripted("reducer"),
    }
    arguments.update(overrides)
    client.map_reduce(**arguments)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"items": []}, "items must not be empty"),
        ({"items": "abc"}, "items must be a list of JSON values"),
        ({"items": ["a", {1, 2}]}, "items[1]: not a JSON value"),
        ({"max_concurrent": 0}, "max_concurrent: Input should be greater than or equal to 1"),
        ({"task": "  "}, "task must not be empty"),
        ({"budget": {"max_agents": -1}}, "budget.max_agents"),
        ({"budget": {"max_cost_usd": -0.5}}, "budget.max_cost_usd"),
        ({"budget": {"max_tokenz": 5}}, "budget.max_tokenz: Extra inputs are not permitted"),
        ({"deadline_s": 0}, "deadline_s"),
        (
            {"mapper": {"name": "m", "model": {"provider": "nope"}}},
            "unknown provider 'nope' (known providers: anthropic, openai, "
            "openai_responses, scripted)",
        ),
        ({"reducer": {"name": ""}}, "name"),
    ],
)
def test_bad_input_is_refused_before_dispatch(
    bare_client: Client, redis_server: LocalRedis, overrides: dict[str, Any], message: str
) -> None:
    runs, queued = dispatched(redis_server)
    with pytest.raises(InvalidRunError) as refused:
        submit(bare_client, **overrides)
    assert message in str(refused.value)
    runs_after, queued_after = dispatched(redis_server)
    assert not runs_after - runs and queued_after <= queued


def test_unknown_run_id_is_a_clear_error(bare_client: Client) -> None:
    with pytest.raises(RunNotFoundError, match="no run with id 'does-not-exist'"):
        bare_client.get_run("does-not-exist")
