"""The run store on a real 3-primary Redis Cluster (issue 13, part 3): the core cases of the
map-reduce, branches, concurrency groups and learner suites on real workers, with the broker
and the result backend on a standalone Redis (kombu has no Cluster transport). Skipped, with
the reason, where ``redis-server`` / ``redis-cli`` cannot be found."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis
from pydantic import ValidationError
from redis.cluster import RedisCluster

from learners.ingest import ingest_records
from orchestrator import AgentSpec, Budget, Client, ModelConfig
from orchestrator.config.settings import Settings, describe_invalid
from orchestrator.errors import RunFailedError
from orchestrator.local import LocalRedis, LocalWorker, wait_for_workers
from orchestrator.models.requests import MapReduceRequest
from orchestrator.plans.cache_store import CachePlanStore
from orchestrator.plans.keys import plan_key, plan_version_key
from orchestrator.plans.store import PlanStore
from orchestrator.state import groups as group_limits
from orchestrator.state.events import AgentEnd, AgentStart
from orchestrator.state.keys import (
    ACTIVE_RUNS,
    WORKERS,
    GroupKeys,
    RunKeys,
    group_tag,
    new_run_id,
    run_tag,
)
from orchestrator.state.scripts import run_script
from tests.conftest import FAST_TIMINGS
from tests.deploy.redis_cluster import LocalRedisCluster, cluster_missing
from tests.helpers import environment, items, scripted, wait_for
from tests.learning.test_learner_logic import record
from tests.learning.test_learning import fanout_agent, wait_for_plan
from tests.runs.test_branches import branch
from tests.runs.test_map_reduce import max_overlap

GROUP_LIMIT = 2


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRedisCluster]:
    missing = cluster_missing()
    if missing:
        pytest.skip(f"no Redis Cluster can be started here: {missing}")
    started = LocalRedisCluster(primaries=3)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def broker() -> Iterator[LocalRedis]:
    server = LocalRedis()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def group(cluster: LocalRedisCluster) -> str:
    """The concurrency group the workers declare: one whose shard is not the one of
    ``ao:workers``, so that a group script reading that key would fail (Redis lets a script
    reach an undeclared key only on its own node)."""
    workers_node = cluster.node_of(WORKERS)
    for number in range(100):
        name = f"cluster-shared-{number}"
        if cluster.node_of(GroupKeys(name).limits) != workers_node:
            return name
    raise AssertionError("every group name landed on the workers' shard")


@pytest.fixture(scope="module")
def cluster_env(
    cluster: LocalRedisCluster, broker: LocalRedis, group: str
) -> Iterator[dict[str, str]]:
    env = {
        **FAST_TIMINGS,
        "ORCHESTRATOR_REDIS_URL": cluster.url,
        "ORCHESTRATOR_REDIS_CLUSTER": "1",
        "ORCHESTRATOR_BROKER_URL": broker.url,
        "ORCHESTRATOR_RESULT_BACKEND": broker.url.removesuffix("/0") + "/1",
        "ORCHESTRATOR_GROUP_LIMITS": f'{{"{group}": {GROUP_LIMIT}}}',
    }
    with environment(env):
        yield env


@pytest.fixture(scope="module")
def client(
    cluster_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Client]:
    logs = tmp_path_factory.mktemp("cluster-worker-logs")
    workers = [
        LocalWorker(name, cluster_env, concurrency=8, log_path=Path(logs) / f"{name}.log")
        for name in ("cw1", "cw2", "cw3")
    ]
    try:
        client = Client(settings=Settings())
        assert isinstance(client.redis, RedisCluster), "the run store must be the Cluster"
        wait_for_workers(client.redis, [w.hostname for w in workers], timeout_s=60)
        yield client
    finally:
        for worker in workers:
            worker.stop()


def starts(handle: Any, name: str) -> int:
    return sum(
        1 for e in handle.events(follow=False) if isinstance(e, AgentStart) and e.name == name
    )


def test_a_map_reduce_returns_its_outputs_in_order_and_reduces_once(client: Client) -> None:
    mapper = scripted("mapper", latency_ms=40, jitter_ms=40, seed=5)
    handle = client.map_reduce("Echo", items(12), mapper, scripted("reducer"), 6)
    result = handle.result(60)
    assert [o.name for o in result.map_outputs] == [f"mapper_{i}" for i in range(12)]
    for i, output in enumerate(result.map_outputs):
        assert output.outcome == "ok" and f"item-{i}" in output.answer
    assert starts(handle, "reducer") == 1
    ends = [e for e in handle.events(follow=False) if isinstance(e, AgentEnd)]
    assert sum(1 for e in ends if e.name == "reducer") == 1
    assert handle.status().state == "succeeded"
    # Ended, it leaves the active runs: removed after its final script, on another shard, so
    # possibly just after the result is visible.
    wait_for(
        lambda: client.redis.zscore(ACTIVE_RUNS, handle.id) is None,
        "the ended run left the active runs",
        30,
    )


def test_the_concurrency_cap_holds_across_three_workers(client: Client) -> None:
    mapper = scripted("mapper", latency_ms=150, jitter_ms=60, seed=1)
    result = client.map_reduce("Cap", items(16), mapper, scripted("reducer"), 4).result(60)
    intervals = [
        (o.started_at, o.ended_at) for o in result.map_outputs if o.started_at and o.ended_at
    ]
    assert len(intervals) == 16
    assert max_overlap(intervals) == 4


def test_the_budget_skips_the_mappers_it_has_no_room_for(client: Client) -> None:
    mapper = scripted("mapper", answer="summary")
    handle = client.map_reduce(
        "Budgeted", items(5), mapper, scripted("reducer"), 2, budget=Budget(max_agents=3)
    )
    result = handle.result(60)
    assert [o.outcome for o in result.map_outputs] == ["ok", "ok", "ok", "skipped", "skipped"]
    assert result.reducer_output is not None and result.reducer_output.outcome == "skipped"
    assert handle.status().counts == {"ok": 3, "error": 0, "skipped": 2, "cancelled": 0}


def test_a_cancel_stops_running_and_queued_mappers(client: Client) -> None:
    mapper = scripted("mapper", latency_ms=3_600_000)  # an hour each
    handle = client.map_reduce("Cancel me", items(10), mapper, scripted("reducer"), 3)
    started = 0
    for event in handle.events():
        if isinstance(event, AgentStart):
            started += 1
            if started == 3:
                break
    assert handle.cancel() is True
    # Ends only if the cancel (published from a script on the run's shard) reached the
    # workers running the mappers.
    result = handle.result(timeout=60)
    assert handle.status().state == "cancelled"
    assert [o.outcome for o in result.map_outputs] == ["cancelled"] * 10
    assert starts(handle, "mapper_3") == 0


def test_branches_pick_by_strategy(client: Client) -> None:
    answers = ["a" * 40, "b" * 4, "c" * 80]
    configs = [branch(f"c{i}", answer=answer) for i, answer in enumerate(answers)]
    handle = client.parallel_branches(configs, prompt="q", strategy="token_efficient")
    result = handle.result(60)
    assert result.selected_index == 1
    assert [o.output.outcome for o in result.outcomes] == ["ok"] * 3


def test_the_runs_of_a_group_share_its_limit_on_the_groups_shard(
    client: Client, cluster: LocalRedisCluster, group: str
) -> None:
    mapper = scripted("mapper", latency_ms=150, jitter_ms=50, seed=2)
    handles = [
        client.map_reduce(f"Group {i}", items(6), mapper, scripted("reducer"), 6, group=group)
        for i in range(3)
    ]
    results = [handle.result(90) for handle in handles]
    intervals = [
        (o.started_at, o.ended_at)
        for result in results
        for o in result.map_outputs
        if o.started_at and o.ended_at
    ]
    assert len(intervals) == 18
    assert all(o.outcome == "ok" for result in results for o in result.map_outputs)
    # The group's limit held across the three runs (each could run 6 at once on its own).
    assert max_overlap(intervals) == GROUP_LIMIT
    # Each run carries the group's tag, so the group's admission reached them all in one script.
    group_node = cluster.node_of(GroupKeys(group).rotation)
    for handle in handles:
        assert run_tag(handle.id) == group_tag(group)
        assert cluster.node_of(RunKeys(handle.id).run) == group_node
    assert int(client.redis.scard(GroupKeys(group).inflight)) == 0


def test_the_learner_produces_plans_of_agents_on_different_shards(client: Client) -> None:
    together = {
        "tool_calls": [
            {"name": "echo", "arguments": {"text": "x", "delay_ms": 250}},
            {"name": "tracked", "arguments": {"key": "cluster", "delay_ms": 250}},
        ]
    }
    # Several agents at once, so that the learners' batches hold records of several agents,
    # whose plans live on different shards.
    agent_ids = [f"planner-{uuid4().hex[:8]}" for _ in range(4)]
    handles = [
        client.run_agent(fanout_agent(agent_id, [together, {"text": "done"}]), "learn")
        for agent_id in agent_ids
    ]
    assert [h.result(60).output.outcome for h in handles] == ["ok"] * 4
    for agent_id in agent_ids:
        plan = wait_for_plan(client, agent_id, lambda p: bool(p.parallel_groups), timeout_s=60)
        assert [g.tool_names for g in plan.parallel_groups] == [["echo", "tracked"]]
        assert plan.version >= 1


def test_an_agent_id_that_would_break_the_hash_tag_costs_no_other_record(
    client: Client, cluster: LocalRedisCluster
) -> None:
    # ``ao:plan:{}x}`` has no hash tag: the plan and its version would land on other slots.
    braced = record(("a", 0, 2), ("b", 1, 3), agent="x").model_dump(mode="json") | {
        "agent_id": "}x"
    }
    agents = [f"tagged-{uuid4().hex[:8]}" for _ in range(2)]
    batches = [
        [braced, record(("a", 0, 2), ("b", 1, 3), agent=a).model_dump(mode="json")] for a in agents
    ]
    with cluster.client() as store:  # in this process, and through real workers' learners
        report = ingest_records(batches[0], PlanStore(store), CachePlanStore(store))
    assert report.changed_agents == agents[:1] and len(report.rejected) == 1
    assert report.rejected[0].startswith("record 0: agent_id: String should match pattern")
    client.send_records(batches[1])
    plan = wait_for_plan(client, agents[1], lambda p: bool(p.parallel_groups), timeout_s=60)
    assert [g.tool_names for g in plan.parallel_groups] == [["a", "b"]]
    with pytest.raises(ValueError, match="hash tag"):
        plan_key("}x")
    assert len({cluster.node_of(key(agents[0])) for key in (plan_key, plan_version_key)}) == 1


def test_runs_spread_over_the_shards_and_each_run_stays_on_one(
    client: Client, cluster: LocalRedisCluster
) -> None:
    handles = [
        client.map_reduce(f"Spread {i}", items(2), scripted("m"), scripted("r"), 2)
        for i in range(12)
    ]
    for handle in handles:
        handle.result(60)
    store = client.redis
    nodes = set()
    for handle in handles:
        keys = RunKeys(handle.id).all
        # The server's own hashing: every key of the run in one slot.
        slots = {int(store.cluster_keyslot(key)) for key in keys}  # type: ignore[attr-defined]
        assert len(slots) == 1, (handle.id, slots)
        node = cluster.node_of(keys[0])
        nodes.add(node)
        # The run really lives there: its hash and outputs are on that node, nowhere else.
        for port in cluster.ports:
            plain = redis.Redis.from_url(cluster.node_url(port))
            try:
                found = plain.execute_command("EXISTS", keys[0], RunKeys(handle.id).outputs)
            except redis.ResponseError:  # MOVED: not this node's slot
                found = 0
            finally:
                plain.close()
            assert int(found) == (2 if port == node else 0)
    # 12 runs on 3 shards: all on one would happen with probability 3 * (1/3)^12.
    assert len(nodes) > 1, nodes


def test_a_child_run_spends_its_parents_ledger_on_the_parents_shard(
    client: Client, cluster: LocalRedisCluster
) -> None:
    # budget.lua reads the ancestors' ledgers without declaring them: the Cluster allows it
    # only because a child's id carries its root's hash tag.
    spec = AgentSpec(name="parent", agent="fan_out",
                     model=ModelConfig(provider="scripted", max_output_tokens=16))  # fmt: skip
    handle = client.run_agent(spec, "p", budget=Budget(max_tokens=150))
    with contextlib.suppress(RunFailedError):  # the reducer may not fit: the spend matters
        handle.result(timeout=90)
    (child_id,) = handle.status().children
    child = client.get_run(child_id)
    assert cluster.node_of(RunKeys(child_id).budget) == cluster.node_of(RunKeys(handle.id).budget)
    own = next(handle.outputs()).tokens.total_tokens
    assert child.budget().spent_tokens > 0
    assert handle.budget().spent_tokens == own + child.budget().spent_tokens <= 150
    assert handle.budget().reserved_tokens == 0 == child.budget().reserved_tokens


def test_a_deadline_ends_a_run_on_the_cluster(client: Client) -> None:
    # The deadline comes before the run's next sweep: the sweep moves it (outside its script,
    # the active runs living on another shard) so that the run ends on time.
    mapper = scripted("mapper", latency_ms=3_600_000)
    handle = client.map_reduce("Late", items(4), mapper, scripted("reducer"), 2, deadline_s=2)
    handle.result(timeout=60)
    status = handle.status()
    assert status.state == "cancelled" and status.cancel_reason == "deadline exceeded"
    wait_for(
        lambda: client.redis.zscore(ACTIVE_RUNS, handle.id) is None,
        "the ended run left the active runs",
        30,
    )


def test_a_grouped_script_that_missed_a_run_of_its_group_stops_before_writing(
    client: Client,
) -> None:
    # A group of its own, declared by a worker that does not exist, so that no real worker's
    # admission comes between the steps below.
    name = f"stale-{uuid4().hex[:8]}"
    group_limits.declare(client.redis, "nobody", {name: 1}, 60_000)
    request = MapReduceRequest(
        task="t", mapper=scripted("m"), reducer=scripted("r"), max_concurrent=1, item_count=2,
        group=name,
    )  # fmt: skip
    first, second = new_run_id(name), new_run_id(name)
    client.store.create_run(first, request, items(2))
    client.store.create_run(second, request, items(2))
    assert client.store.start(first, "node").admitted == [0]  # `first` is in the rotation now
    # `second`'s start declaring no other run of the group, as a caller that read the rotation
    # before `first` joined would: the script refuses before it writes anything.
    stale_keys = [*RunKeys(second).all, *GroupKeys(name).all]
    with pytest.raises(redis.ResponseError, match=r"^STALE"):
        run_script(client.redis, "start_run", stale_keys, ["node", 2000])
    assert client.redis.hget(RunKeys(second).run, "state") == b"pending"
    assert client.redis.lrange(GroupKeys(name).rotation, 0, -1) == [first.encode()]
    # The store reads the rotation first and declares `first`: the start goes through.
    assert client.store.start(second, "node").admitted == []  # the group's one slot is taken
    assert client.redis.hget(RunKeys(second).run, "state") == b"running"
    for run_id in (first, second):
        client.store.request_cancel(run_id, "test over")


def test_a_cluster_run_store_needs_a_broker_and_a_backend_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The module's Cluster fixture may still have these set for the tests around this one.
    for name in (
        "ORCHESTRATOR_BROKER_URL",
        "ORCHESTRATOR_RESULT_BACKEND",
        "ORCHESTRATOR_REDIS_CLUSTER",
    ):
        monkeypatch.delenv(name, raising=False)
    url = "redis://:secret-pass@127.0.0.1:7000/0"
    with pytest.raises(ValidationError) as refused:
        Settings(redis_url=url, redis_cluster=True, broker_url="redis://127.0.0.1:6400/0")
    message = describe_invalid(refused.value)
    assert "ORCHESTRATOR_RESULT_BACKEND must be set" in message
    assert "ORCHESTRATOR_BROKER_URL" not in message.split("so ")[1].split(" must")[0]
    assert "secret-pass" not in message
    with pytest.raises(ValidationError, match="redis:// or rediss://"):
        Settings(
            redis_url="sentinel://127.0.0.1:26379/0",
            redis_cluster=True,
            broker_url="redis://127.0.0.1:6400/0",
            result_backend="redis://127.0.0.1:6400/1",
        )
    # Off, nothing more is asked of the settings than before.
    assert Settings(redis_url=url).broker == url
