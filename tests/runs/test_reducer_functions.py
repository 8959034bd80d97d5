"""Reducer functions on real workers: a map-reduce names a ``@reducer`` the workers register
(``ORCHESTRATOR_MODULES``), it runs as the run's final step without a model call, and what it
returns is the result's ``reduced_data``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator import AgentSpec, Budget, Client, InvalidRunError, ModelConfig, RunFailedError
from orchestrator.local import LocalRedis, LocalWorker, wait_for_workers
from orchestrator.reducers import DEFAULT_TIMEOUT_S
from orchestrator.state.keys import FINAL_MEMBER, run_keys
from tests.helpers import scripted
from tests.worker_processes.test_worker_start import assert_refused, worker_env
from workers.kinds.reducer_functions import MapOutputs

PRICED = {"type": "object", "properties": {"total": {"type": "number", "minimum": 2.5}}}
REGISTERED = "explode, not_json, outcomes, patient, stall, sum_totals"


def priced(name: str = "extract") -> AgentSpec:
    """A scripted mapper whose answer (the least the schema allows) is ``{"total": 2.5}``."""
    return AgentSpec(name=name, model=ModelConfig(provider="scripted"), output_schema=PRICED)


def test_a_reducer_function_s_return_value_is_the_reduced_data(client: Client) -> None:
    handle = client.map_reduce("Sum", ["a", "b", "c", "d"], priced(), "sum_totals")
    result = handle.result(30)
    assert result.reduced_data == {"task": "Sum", "count": 4, "total": 10.0}
    assert result.reduced_answer == '{"task":"Sum","count":4,"total":10.0}'
    reducer = result.reducer_output
    assert reducer is not None and reducer.name == "sum_totals"
    assert (reducer.turns, reducer.tokens.total_tokens) == (0, 0)  # no model call
    assert handle.budget().agents == 4  # the mappers: the reducer function is none


def test_an_unknown_reducer_is_refused_at_submit_listing_the_registered_ones(
    client: Client,
) -> None:
    assert client.reducers() == REGISTERED.split(", ")
    with pytest.raises(InvalidRunError) as refused:
        client.map_reduce("t", ["a"], scripted("m"), "total_of_everything")
    message = str(refused.value)
    assert "unknown reducer function 'total_of_everything'" in message
    assert f"registered on the workers: {REGISTERED}" in message


@pytest.mark.parametrize("name", ["shutil:rmtree", "os.system"])
def test_a_reducer_named_by_an_import_path_is_refused(client: Client, name: str) -> None:
    with pytest.raises(InvalidRunError, match=f"unknown reducer function {name!r}"):
        client.map_reduce("t", ["a"], scripted("m"), name)


def test_a_reducer_that_raises_fails_the_run_and_keeps_the_map_outputs(client: Client) -> None:
    handle = client.map_reduce("t", ["a", "b", "c"], scripted("m", answer="done"), "explode")
    with pytest.raises(RunFailedError) as failed:
        handle.result(30)
    error = "reducer failed: reducer 'explode' raised RuntimeError: no total for 3 outputs"
    assert failed.value.error == error
    kept = failed.value.result
    assert kept is not None
    assert [o.answer for o in kept.map_outputs] == ["done"] * 3
    assert kept.reduced_data is None


def test_a_reducer_that_returns_no_json_value_fails_the_run(client: Client) -> None:
    handle = client.map_reduce("t", ["a"], scripted("m"), "not_json")
    with pytest.raises(RunFailedError, match="reducer 'not_json' returned no JSON value"):
        handle.result(30)


def test_a_reducer_function_sees_every_output_and_is_no_agent_of_the_budget(
    client: Client,
) -> None:
    mapper = scripted("m", fail_on="item: b")
    budget = Budget(max_agents=3)  # the three mappers: an agent reducer would be skipped
    result = client.map_reduce("t", ["a", "b", "c"], mapper, "outcomes", budget=budget).result(30)
    assert result.reduced_data == ["ok", "error", "ok"]


def test_a_reducer_function_past_its_time_limit_fails_the_run(client: Client) -> None:
    handle = client.map_reduce("t", ["a", "b"], scripted("m"), "stall")
    with pytest.raises(RunFailedError) as failed:
        handle.result(60)
    assert failed.value.error == "reducer failed: timed out after 1 s"
    kept = failed.value.result
    assert kept is not None and [o.outcome for o in kept.map_outputs] == ["ok", "ok"]


def test_a_reducer_function_is_held_to_its_registered_time_limit_above_a_member_s(
    client: Client, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    handle = client.map_reduce(str(release), ["a"], scripted("m"), "patient")  # 1800 s
    deadlines = run_keys(handle.id).deadlines
    while (deadline := client.redis.hget(deadlines, FINAL_MEMBER)) is None:
        assert handle.status().state in ("pending", "running")
        time.sleep(0.05)
    seconds, micros = client.redis.time()
    left_ms = float(deadline) - (seconds * 1000 + micros // 1000)
    release.touch()
    assert handle.result(30).reduced_data == 1
    # Claimed with its own half hour, not a member's default 900 s (that would fail it there).
    assert left_ms > DEFAULT_TIMEOUT_S * 1000


def test_map_outputs_are_read_a_page_at_a_time_in_item_order(client: Client) -> None:
    handle = client.map_reduce("t", [f"item-{i}" for i in range(7)], scripted("m"), "outcomes")
    result = handle.result(30)
    pages = MapOutputs(client.store, handle.id, 7, page_size=3)
    assert len(pages) == 7
    assert list(pages) == result.map_outputs
    assert [pages[i].name for i in (6, 0, 4, -1)] == ["m_6", "m_0", "m_4", "m_6"]
    assert [o.name for o in pages[2:5]] == ["m_2", "m_3", "m_4"]
    with pytest.raises(IndexError):
        pages[7]


def test_one_variable_lists_the_modules_of_every_kind_of_registration(
    private_redis: LocalRedis, tmp_path: Path
) -> None:
    env = {
        "ORCHESTRATOR_REDIS_URL": private_redis.url,
        "ORCHESTRATOR_MODULES": "tests.registered.registrations",
        # Nothing from the older variables (the session's workers set them).
        "ORCHESTRATOR_TOOL_MODULES": "",
        "ORCHESTRATOR_STRATEGY_MODULES": "",
    }
    worker = LocalWorker("modules", env, concurrency=2, log_path=tmp_path / "worker.log")
    try:
        wait_for_workers(redis.Redis.from_url(private_redis.url), [worker.hostname])
        client = Client(redis_url=private_redis.url)
        assert [info.name for info in client.tools()] == ["shout"]
        assert client.strategies()[-1] == "pick_shortest"
        assert client.reducers() == ["joined"]
        mapper: dict[str, Any] = {**scripted("m", answer="x").model_dump(), "tools": ["shout"]}
        result = client.map_reduce("t", ["a", "b"], mapper, "joined").result(60)
        assert result.reduced_data == "x|x"
    finally:
        worker.stop()


def test_a_module_that_does_not_import_stops_the_worker(private_redis: LocalRedis) -> None:
    env = worker_env(
        {"ORCHESTRATOR_REDIS_URL": private_redis.url, "ORCHESTRATOR_MODULES": "nope.reducers"}
    )
    line = assert_refused(env, "ORCHESTRATOR_MODULES", "'nope.reducers'")
    cause = "cannot import 'nope.reducers': No module named 'nope'"
    assert line == f"error: ORCHESTRATOR_MODULES: {cause}"
