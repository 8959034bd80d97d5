"""Child runs (``ctx.map_reduce``, ``ctx.run_agent`` from an agent function) belong to the
member's run: their spend is charged to the parent's ledger as it happens and bounded by the
parent's limits; the parent's events and status name them; cancelling the parent ends them,
calls in flight included; a member waiting on its child never starves it of a worker slot,
whatever ``-c``; a redelivered member adopts the child its dead execution started."""

from __future__ import annotations

import contextlib
from pathlib import Path

import redis

from orchestrator import AgentSpec, Budget, Client, ModelConfig
from orchestrator.errors import RunFailedError
from orchestrator.local import LocalRedis
from orchestrator.state.budget import RunBudget
from orchestrator.state.events import ChildRunStart
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, scripted, start_workers, wait_for
from tests.servers.model_server import SlowModelServer


def function(name: str, agent: str) -> AgentSpec:
    model = ModelConfig(provider="scripted", max_output_tokens=16)
    return AgentSpec(name=name, agent=agent, model=model)


def test_a_child_map_reduce_spends_the_parents_budget_and_never_passes_it(
    client: Client,
) -> None:
    limit = 150
    handle = client.run_agent(function("parent", "fan_out"), "p", budget=Budget(max_tokens=limit))
    with contextlib.suppress(RunFailedError):  # the reducer may not fit: the spend matters
        handle.result(timeout=90)
    status = handle.status()
    (child_id,) = status.children
    child = client.get_run(child_id)
    assert child.status().parent == handle.id
    parent_ledger, child_ledger = handle.budget(), child.budget()
    own = next(handle.outputs()).tokens.total_tokens
    assert child_ledger.spent_tokens > 0, "the child ran on the parent's budget"
    assert parent_ledger.spent_tokens == own + child_ledger.spent_tokens, "charged as it happened"
    assert parent_ledger.spent_tokens <= limit
    assert parent_ledger.reserved_tokens == 0 and child_ledger.reserved_tokens == 0
    skipped = [o for o in child.outputs() if o.outcome == "skipped"]
    assert skipped, "the parent's limit stopped the child"
    assert all("the parent run's max_tokens (150 tokens)" in str(o.error) for o in skipped)
    starts = [e for e in handle.events(follow=False) if isinstance(e, ChildRunStart)]
    assert [(e.child_run_id, e.kind, e.name) for e in starts] == [
        (child_id, "map_reduce", "parent")
    ]


def test_a_childs_agents_count_in_the_parents_max_agents(client: Client) -> None:
    handle = client.run_agent(function("parent", "fan_out"), "p", budget=Budget(max_agents=4))
    # The child's reducer is denied too: its answer is the unreduced summaries.
    assert handle.result(timeout=90).output.outcome == "ok"
    (child_id,) = handle.status().children
    child = client.get_run(child_id)
    ran = [o for o in child.outputs() if o.outcome != "skipped"]
    assert len(ran) == 3, "the parent is one agent: three of its child's fit"
    assert handle.budget().agents == 4


def test_a_worker_with_two_slots_runs_four_parents_that_wait_on_children(
    private_redis: LocalRedis, tmp_path: Path
) -> None:
    env = {**FAST_TIMINGS, "ORCHESTRATOR_REDIS_URL": private_redis.url}
    (worker,) = start_workers(env, ["two-slots"], tmp_path, 2)
    try:
        client = Client(redis_url=private_redis.url)
        parent = function("parent", "waits_on_child")
        handle = client.map_reduce("Wait", items(4), parent, scripted("reducer"), 4)
        result = handle.result(timeout=120)
        answers = [o.answer for o in result.map_outputs]
        assert answers == [f"[scripted scripted-1] child of item-{i}" for i in range(4)]
        assert len(handle.status().children) == 4
        deep = client.run_agent(function("nested-3", "nested"), "3").result(timeout=120)
        assert deep.output.answer == "[scripted scripted-1] leaf", "three levels deep"
    finally:
        worker.stop()


def test_cancelling_the_parent_ends_its_running_child_and_its_call_in_flight(
    private_redis: LocalRedis, tmp_path: Path
) -> None:
    api = SlowModelServer(delay_s=600)
    env = {**FAST_TIMINGS, "ORCHESTRATOR_REDIS_URL": private_redis.url, **api.worker_env()}
    (worker,) = start_workers(env, ["cancels"], tmp_path, 4)
    try:
        client = Client(redis_url=private_redis.url)
        handle = client.run_agent(function("parent", "slow_child"), "p")
        wait_for(lambda: api.received == ["child of p"], "the child's call", 30, 0.01)
        (child_id,) = handle.status().children
        assert handle.cancel() is True
        assert handle.wait(timeout=30).state == "cancelled"
        child = client.get_run(child_id)
        assert child.wait(timeout=30).state == "cancelled"
        wait_for(lambda: api.abandoned == ["child of p"], "aborted in flight", 10, 0.01)
        assert api.answered == []
    finally:
        worker.stop()
        api.close()


def test_a_redelivered_parent_adopts_the_child_its_dead_execution_started(
    private_redis: LocalRedis, tmp_path: Path
) -> None:
    api = SlowModelServer(delay_s=3)
    env = {**FAST_TIMINGS, "ORCHESTRATOR_REDIS_URL": private_redis.url, **api.worker_env()}
    (victim,) = start_workers(env, ["victim"], tmp_path, 2)
    survivor = None
    try:
        client = Client(redis_url=private_redis.url)
        handle = client.run_agent(function("parent", "slow_child"), "p")
        wait_for(lambda: "child of p" in api.received, "the child runs", 30, 0.01)
        victim.kill()
        (survivor,) = start_workers(env, ["survivor"], tmp_path, 2)
        result = handle.result(timeout=90)
        assert result.output.answer == "answer to child of p"
        (child_id,) = handle.status().children
        starts = [e for e in handle.events(follow=False) if isinstance(e, ChildRunStart)]
        assert len(starts) == 1 and starts[0].child_run_id == child_id, "adopted, not restarted"
        budget = RunBudget(redis.Redis.from_url(private_redis.url), child_id).ledger()
        assert budget.reserved_tokens == 0
    finally:
        victim.kill()
        if survivor is not None:
            survivor.stop()
        api.close()


def test_a_redelivered_parent_with_a_deadline_adopts_its_child_and_starts_no_second(
    private_redis: LocalRedis, tmp_path: Path
) -> None:
    # The child's deadline is what is left of the parent's, which is less at each execution:
    # the call that starts it must still name the same child.
    api = SlowModelServer(delay_s=3)
    env = {**FAST_TIMINGS, "ORCHESTRATOR_REDIS_URL": private_redis.url, **api.worker_env()}
    (victim,) = start_workers(env, ["victim"], tmp_path, 2)
    survivor = None
    try:
        client = Client(redis_url=private_redis.url)
        handle = client.run_agent(function("parent", "slow_child"), "p", deadline_s=600)
        wait_for(lambda: "child of p" in api.received, "the child runs", 30, 0.01)
        victim.kill()
        (survivor,) = start_workers(env, ["survivor"], tmp_path, 2)
        assert handle.result(timeout=90).output.answer == "answer to child of p"
        starts = [e for e in handle.events(follow=False) if isinstance(e, ChildRunStart)]
        assert len(starts) == 1, "adopted, not started again"
        assert len(handle.status().children) == 1
    finally:
        victim.kill()
        if survivor is not None:
            survivor.stop()
        api.close()
