"""A client names strategies, never code: only built-ins and the workers' registered
``@strategy`` functions run, and nothing a run names is ever imported."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import uuid4

import pytest

from orchestrator import Client, InvalidRunError, ParallelResult, RunHandle
from orchestrator.models.requests import BranchesRequest
from orchestrator.state.keys import RunKeys, admit_task_id
from tests.helpers import scripted
from workers.kinds.evaluation import StrategyError, load_strategy
from workers.kinds.strategy_registry import StrategyRegistry


@pytest.mark.parametrize("name", ["shutil:rmtree", "pty:spawn", "importlib:import_module"])
def test_an_import_path_is_refused_at_submit_with_the_registered_names(
    client: Client, name: str
) -> None:
    with pytest.raises(InvalidRunError) as refused:
        client.parallel_branches([scripted("a"), scripted("b")], prompt="/tmp", strategy=name)
    message = str(refused.value)
    assert repr(name) in message and "out_of_range, pick_last" in message


def test_an_unknown_strategy_name_is_refused_at_submit(client: Client) -> None:
    with pytest.raises(InvalidRunError, match="unknown strategy 'longest'"):
        client.parallel_branches([scripted("a")], prompt="q", strategy="longest")


def test_the_client_lists_built_in_and_registered_strategies(client: Client) -> None:
    assert client.strategies()[-2:] == ["out_of_range", "pick_last"]
    assert "pick_first" in client.strategies()


def test_a_worker_never_imports_what_a_stored_request_names(client: Client, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    run_id = uuid4().hex
    request = BranchesRequest(
        configs=[scripted("a"), scripted("b")], prompt=str(victim), session_id="s"
    )
    client.store.create_run(run_id, request)
    # A request written to Redis by something other than the client, naming a function that
    # would delete the directory its prompt names.
    smuggled = json.loads(request.model_dump_json())
    smuggled["strategy"] = "shutil:rmtree"
    client.redis.hset(RunKeys(run_id).run, "request", json.dumps(smuggled))
    client._celery.send_task(
        "tasks.coordinator.admit_run", args=(run_id,), task_id=admit_task_id(run_id)
    )
    handle: RunHandle[ParallelResult] = RunHandle(client, run_id, ParallelResult)
    status = handle.wait(timeout=60)
    assert status.state == "failed"
    assert "cannot read this run's request" in (status.error or "")
    assert victim.is_dir()


def test_evaluation_looks_strategies_up_by_name_only() -> None:
    with pytest.raises(StrategyError, match="not registered on this worker"):
        load_strategy("shutil:rmtree", StrategyRegistry({}))
