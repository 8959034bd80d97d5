"""Concurrency groups: runs that name a group share its limit across all workers and take
turns for its slots. Two real workers on a Redis of this module's own declare the groups;
the admission scripts' rules are also checked on their own against a real Redis."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis

from orchestrator import AgentSpec, Client, InvalidRunError, ModelConfig
from orchestrator.config.settings import Settings
from orchestrator.local import LocalRedis, LocalWorker, wait_for_workers
from orchestrator.models import AgentOutput
from orchestrator.models.requests import MapReduceRequest
from orchestrator.state import groups as group_limits
from orchestrator.state import presence
from orchestrator.state.events import AgentEnd, AgentStart
from orchestrator.state.keys import RECENT_RUNS, GroupKeys, RunKeys, new_run_id
from orchestrator.state.store import RunStore
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, run_cli, scripted, start_workers, wait_for
from tests.worker_processes.test_worker_start import assert_refused, worker_env

# Each test has a group of its own; "mixed" is declared differently by the two workers.
LIMITS = {"cap": 3, "turns": 1, "cancel": 2, "repair": 2, "kinds": 2}
FIRST = {**LIMITS, "mixed": 3}
SECOND = {**LIMITS, "mixed": 2}


@pytest.fixture(scope="module")
def server() -> Iterator[LocalRedis]:
    private = LocalRedis()
    yield private
    private.stop()


@pytest.fixture(scope="module")
def env(server: LocalRedis) -> dict[str, str]:
    return {"ORCHESTRATOR_REDIS_URL": server.url, **FAST_TIMINGS}


@pytest.fixture(scope="module")
def cluster(
    env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[LocalWorker]]:
    """Two workers on every queue, declaring the same groups but for ``mixed``."""
    logs = tmp_path_factory.mktemp("group-workers")
    started = [
        LocalWorker(
            name,
            {**env, "ORCHESTRATOR_GROUP_LIMITS": json.dumps(limits)},
            concurrency=8,
            log_path=logs / f"{name}.log",
        )
        for name, limits in (("g1", FIRST), ("g2", SECOND))
    ]
    try:
        hostnames = [worker.hostname for worker in started]
        wait_for_workers(redis.Redis.from_url(env["ORCHESTRATOR_REDIS_URL"]), hostnames)
        yield started
    finally:
        for worker in started:
            worker.stop()


@pytest.fixture
def client(server: LocalRedis, cluster: list[LocalWorker]) -> Client:
    return Client(redis_url=server.url)


def tracked_mapper(key: str, delay_ms: int) -> AgentSpec:
    """A mapper whose one tool call is counted under ``key`` while it runs, across workers:
    the most at once is kept in ``test:{key}:max``."""
    call = {"name": "tracked", "arguments": {"key": key, "delay_ms": delay_ms}}
    script = [{"tool_calls": [call]}, {"text": "done"}]
    model = ModelConfig(provider="scripted", options={"script": script})
    return AgentSpec(name="mapper", model=model, tools=["tracked"])


def most_at_once(client: Client, key: str) -> int:
    return int(client.redis.get(f"test:{key}:max") or 0)


def starts(handle: Any) -> list[AgentStart]:
    return [e for e in handle.events(follow=False) if isinstance(e, AgentStart)]


def test_a_group_limit_holds_across_workers_and_runs(client: Client) -> None:
    key = f"cap-{uuid4().hex}"
    mapper = tracked_mapper(key, delay_ms=150)
    handles = [
        client.map_reduce("Cap", items(8), mapper, scripted("reducer"), 8, group="cap")
        for _ in range(3)
    ]
    for handle in handles:
        result = handle.result(timeout=90)
        assert [o.outcome for o in result.map_outputs] == ["ok"] * 8
    # Each run alone would have had 8 at once; together the three had the group's 3.
    assert most_at_once(client, key) == 3
    ran_on = {e.worker for handle in handles for e in starts(handle)}
    assert len({worker.rsplit(":", 1)[-1] for worker in ran_on if worker}) == 2, ran_on
    assert group_limits.in_flight(client.redis, "cap") == 0


def test_workers_that_disagree_hold_the_lowest_limit(client: Client) -> None:
    assert client.groups()["mixed"] == 2
    key = f"mixed-{uuid4().hex}"
    handle = client.map_reduce(
        "Mixed", items(8), tracked_mapper(key, 150), scripted("reducer"), 8, group="mixed"
    )
    assert [o.outcome for o in handle.result(timeout=60).map_outputs] == ["ok"] * 8
    assert most_at_once(client, key) == 2


def test_a_small_run_takes_turns_with_a_big_run_that_fills_the_group(client: Client) -> None:
    # A limit of one: each member is admitted only once the one before it ended, so the order
    # the members started in is the order the group admitted them in.
    mapper = scripted("mapper", latency_ms=80)
    big = client.map_reduce("Big", items(16), mapper, scripted("reducer"), 16, group="turns")
    wait_for(lambda: len(starts(big)) >= 1, "the big run took the group's slot")
    small = client.map_reduce("Small", items(4), mapper, scripted("reducer"), 4, group="turns")
    runs = {"B": big.result(timeout=60), "S": small.result(timeout=60)}
    started = sorted(
        (output.started_at, label)
        for label, result in runs.items()
        for output in result.map_outputs
        if output.started_at is not None
    )
    order = [label for _, label in started]
    assert len(order) == 20
    first, last = order.index("S"), len(order) - 1 - order[::-1].index("S")
    assert order[first : last + 1] == ["S", "B", "S", "B", "S", "B", "S"], order
    assert "B" in order[last:], "the big run still had members waiting when the small one ended"


def test_a_run_waits_while_its_group_is_full_and_a_cancel_frees_the_slots(
    client: Client,
) -> None:
    slow = scripted("mapper", latency_ms=600_000)
    holder = client.map_reduce("Hold", items(4), slow, scripted("reducer"), 4, group="cancel")
    wait_for(lambda: len(starts(holder)) == 2, "the first run took both slots")
    waiting = client.map_reduce(
        "Wait", items(3), scripted("mapper"), scripted("reducer"), 3, group="cancel"
    )
    wait_for(lambda: waiting.status().state == "running", "the second run was admitted")
    assert waiting.status().in_flight == 0 and starts(waiting) == []
    holder.cancel()
    result = waiting.result(timeout=30)
    assert [o.outcome for o in result.map_outputs] == ["ok"] * 3
    held = holder.result(timeout=30)
    assert [o.outcome for o in held.map_outputs] == ["cancelled"] * 4
    assert group_limits.in_flight(client.redis, "cancel") == 0


def test_the_sweep_frees_the_slots_of_a_run_deleted_with_members_in_flight(
    client: Client,
) -> None:
    slow = scripted("mapper", latency_ms=600_000)
    lost = client.map_reduce("Lost", items(3), slow, scripted("reducer"), 3, group="repair")
    wait_for(lambda: len(starts(lost)) == 2, "the first run took both slots")
    waiting = client.map_reduce(
        "Wait", items(2), scripted("mapper"), scripted("reducer"), 2, group="repair"
    )
    wait_for(lambda: waiting.status().state == "running", "the second run was admitted")
    assert waiting.status().in_flight == 0
    # The run's keys go (as when it is deleted, or expires) while its members hold the slots:
    # nothing is left to release them but the watchdog.
    client.redis.delete(*client.redis.keys(f"{RunKeys(lost.id).run}*"))
    result = waiting.result(timeout=30)
    assert [o.outcome for o in result.map_outputs] == ["ok"] * 2


def test_every_kind_of_run_takes_a_group(client: Client, env: dict[str, str]) -> None:
    configs = [scripted("a"), scripted("b"), scripted("c")]
    branches = client.parallel_branches(configs, prompt="go", group="kinds")
    single = client.run_agent(scripted("solo"), "go", group="kinds")
    assert [b.output.outcome for b in branches.result(timeout=30).outcomes] == ["ok"] * 3
    assert single.result(timeout=30).output.outcome == "ok"
    assert branches.status().group == "kinds" and single.status().group == "kinds"
    done = run_cli(
        "submit", "map-reduce", "--task", "Cli", "--group", "kinds", "--output", "json",
        env=env, stdin="one\ntwo\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    status = run_cli("status", run_id, "--output", "json", env=env)
    assert json.loads(status.stdout)["group"] == "kinds"


def test_a_group_no_worker_declares_is_refused_before_dispatch(
    client: Client, env: dict[str, str]
) -> None:
    runs_before = client.redis.zcard(RECENT_RUNS)
    with pytest.raises(InvalidRunError) as refused:
        client.map_reduce("X", items(2), scripted("m"), scripted("r"), group="nobody")
    assert "unknown concurrency group 'nobody'" in str(refused.value)
    assert "declared on the workers: cancel, cap, kinds, mixed, repair, turns" in str(refused.value)
    with pytest.raises(InvalidRunError, match="group: 'team a' is not a group name"):
        client.run_agent(scripted("solo"), "go", group="team a")
    done = run_cli(
        "submit", "map-reduce", "--task", "X", "--group", "nobody", env=env, stdin="one\n"
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: group: unknown concurrency group 'nobody'")
    assert client.redis.zcard(RECENT_RUNS) == runs_before, "nothing was dispatched"


@pytest.mark.parametrize(
    ("value", "cause"),
    [
        ("{team-a: 5}", "not valid JSON"),
        ('["team-a"]', "a JSON object of group name -> limit"),
        ('{"team a": 5}', "group 'team a': a group name is"),
        ('{"team-a": 0}', "group 'team-a': the limit must be a positive integer, not 0"),
        ('{"team-a": "5"}', 'the limit must be a positive integer, not "5"'),
    ],
)
def test_a_worker_with_bad_group_limits_refuses_to_start(
    server: LocalRedis, value: str, cause: str
) -> None:
    env = worker_env({"ORCHESTRATOR_REDIS_URL": server.url, "ORCHESTRATOR_GROUP_LIMITS": value})
    assert_refused(env, "ORCHESTRATOR_GROUP_LIMITS", cause)


# The admission scripts on their own, against a Redis no worker uses (each step is called as
# a worker would call it, and no watchdog sweeps these runs meanwhile).


@pytest.fixture
def store(module_redis: LocalRedis) -> RunStore:
    return RunStore(redis.Redis.from_url(module_redis.url), Settings(redis_url=module_redis.url))


def declare(store: RunStore, limits_by_host: dict[str, int]) -> str:
    """A fresh group, declared by live workers ``host -> limit``; its name."""
    name = f"g-{uuid4().hex[:12]}"
    for host, limit in limits_by_host.items():
        presence.refresh(store.client, host, 60_000)
        group_limits.declare(store.client, host, {name: limit}, 60_000)
    return name


def new_run(store: RunStore, group: str, total: int, cap: int) -> str:
    run_id = new_run_id(group)
    request = MapReduceRequest(
        task="t",
        mapper=scripted("m"),
        reducer=scripted("r"),
        max_concurrent=cap,
        item_count=total,
        group=group,
    )
    store.create_run(run_id, request, items(total))
    return run_id


def complete(store: RunStore, run_id: str, index: int) -> Any:
    output = AgentOutput(name=f"m_{index}")
    end = AgentEnd(run_id=run_id, name=output.name, index=index, outcome="ok")
    return store.complete(run_id, str(index), output, [end], node="node").admission


def test_a_run_whose_own_cap_is_full_is_passed_over_in_the_rotation(store: RunStore) -> None:
    group = declare(store, {"host-a": 3})
    capped = new_run(store, group, total=5, cap=1)
    other = new_run(store, group, total=5, cap=5)
    assert store.start(capped, "node").admitted == [0]
    assert store.start(other, "node").admitted == [0, 1]
    # A slot of `other` frees: `capped` is next in turn, but its own cap is full.
    admission = complete(store, other, 0)
    assert (admission.admitted, admission.others) == ([2], {})
    # A slot of `capped` frees: the turn is `capped`'s again, and its cap has room.
    admission = complete(store, capped, 0)
    assert (admission.admitted, admission.others) == ([1], {})
    # `other`'s turn; then `capped`'s, but it is full again: `other` takes that one too.
    assert complete(store, other, 1).admitted == [3]
    assert complete(store, other, 2).admitted == [4]


def test_freed_slots_go_round_the_runs_in_turn_newcomers_last(store: RunStore) -> None:
    group = declare(store, {"host-a": 2})
    first = new_run(store, group, total=6, cap=6)
    second = new_run(store, group, total=6, cap=6)
    assert store.start(first, "node").admitted == [0, 1]
    assert store.start(second, "node").admitted == [], "the group is full: it waits"
    # `second` joined the rotation behind `first`: one turn of `first`, then they alternate,
    # whichever run's member freed the slot.
    turns = []
    for run_id, index in [(first, 0), (first, 1), (first, 2), (second, 0), (first, 3)]:
        admission = complete(store, run_id, index)
        shares = {run_id: admission, **admission.others}
        turns += [(run, member) for run, share in shares.items() for member in share.admitted]
    assert turns == [(first, 2), (second, 0), (first, 3), (second, 1), (first, 4)]
    assert group_limits.in_flight(store.client, group) == 2


def test_the_lowest_limit_a_live_worker_declares_holds(store: RunStore) -> None:
    group = declare(store, {"host-high": 3, "host-low": 1})
    first = new_run(store, group, total=4, cap=4)
    assert store.start(first, "node").admitted == [0]
    # The worker that declared 1 leaves (as its watchdog does as it stops): the other's 3 holds
    # from the next admission on.
    presence.leave(store.client, "host-low")
    group_limits.leave(store.client, "host-low", {group: 1})
    second = new_run(store, group, total=4, cap=4)
    admission = store.start(second, "node")
    assert admission.admitted == [0] and admission.others[first].admitted == [1]
    assert group_limits.limit(store.client, group) == 3
    assert store.client.zscore(GroupKeys(group).limits, "host-low") is not None


def test_a_cancel_hands_the_slots_of_its_queued_members_to_the_group(store: RunStore) -> None:
    group = declare(store, {"host-a": 2})
    cancelled = new_run(store, group, total=4, cap=4)
    waiting = new_run(store, group, total=3, cap=3)
    assert store.start(cancelled, "node").admitted == [0, 1]
    store.confirm_published(cancelled, "node", ["0", "1"])  # they wait in the queue
    assert store.start(waiting, "node").admitted == []
    store.request_cancel(cancelled, "test")
    sweep = store.sweep(cancelled, "node")
    assert sorted(sweep.abandon) == ["0", "1"]
    ended = []
    for member in sweep.abandon:
        output = AgentOutput.not_run(f"m_{member}", "cancelled", "cancelled: test")
        end = AgentEnd(run_id=cancelled, name=output.name, index=int(member), outcome="cancelled")
        ended.append((member, output.model_dump_json(), end.model_dump_json()))
    count, _, freed = store.end_members(cancelled, "cancelled", ended, node="node")
    assert count == 2
    assert (freed.admitted, list(freed.others)) == ([], [waiting])
    assert freed.others[waiting].admitted == [0, 1]
    assert store.client.lrange(GroupKeys(group).rotation, 0, -1) == [waiting.encode()]


def test_the_slots_of_members_lost_with_a_killed_worker_come_back(
    private_redis: LocalRedis, tmp_path: Path
) -> None:
    # Workers of its own: one of them is killed.
    env = {
        "ORCHESTRATOR_REDIS_URL": private_redis.url,
        **FAST_TIMINGS,
        "ORCHESTRATOR_GROUP_LIMITS": json.dumps({"lost": 2}),
    }
    victim, survivor = start_workers(env, ["victim", "survivor"], tmp_path, concurrency=3)
    try:
        client = Client(redis_url=private_redis.url)
        mapper = scripted("mapper", latency_ms=1500)
        handle = client.map_reduce("Lost", items(4), mapper, scripted("reducer"), 4, group="lost")
        wait_for(lambda: len(starts(handle)) == 2, "the run took both slots")
        victim_pid = f":{victim.pid}"
        if not any(e.worker and e.worker.endswith(victim_pid) for e in starts(handle)):
            victim, survivor = survivor, victim
        victim.kill()  # its member is lost, holding a slot of the group
        result = handle.result(timeout=60)
        assert [o.outcome for o in result.map_outputs] == ["ok"] * 4
        rerun = Counter(e.index for e in starts(handle) if e.index is not None)
        assert max(rerun.values()) == 2, "the lost member ran again"
        assert group_limits.in_flight(client.redis, "lost") == 0
        # Both slots serve the group again.
        key = f"lost-{uuid4().hex}"
        after = client.map_reduce(
            "After", items(6), tracked_mapper(key, 150), scripted("reducer"), 6, group="lost"
        )
        assert [o.outcome for o in after.result(timeout=60).map_outputs] == ["ok"] * 6
        assert most_at_once(client, key) == 2
    finally:
        victim.kill()
        survivor.stop()
