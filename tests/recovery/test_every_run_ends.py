"""Every run ends, and every admitted member is published or held under a lease that expires:
members a batch hands back when the broker is out of reach, a run in a concurrency group whose
request the workers cannot read, members a bulk cancel lets in, members a sweep took over just
before it found the run unreadable. The coordinator's steps run here as a worker runs them,
with a real Celery app on a Redis no worker consumes from."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest
import redis
from celery import Celery

from orchestrator.config.celery_config import celery_config
from orchestrator.config.settings import Settings
from orchestrator.local import LocalRedis
from orchestrator.models import AgentOutput
from orchestrator.models.requests import MapReduceRequest
from orchestrator.state import groups as group_limits
from orchestrator.state import presence
from orchestrator.state.events import AgentEnd, AgentStart
from orchestrator.state.keys import GroupKeys, RunKeys, new_run_id
from orchestrator.state.store import RunStore
from tests.helpers import items, scripted, wait_for
from workers.coordination import steps
from workers.execution import lanes
from workers.execution.leases import LeaseKeeper
from workers.identity import node_name

QUEUED = 4_000_000_000_000_000
"""The lease score of a member whose message was sent (``lua/common.lua``): it never expires."""
UNREADABLE = '{"kind": "from-a-newer-client", "shape": "unknown"}'


@pytest.fixture
def store(module_redis: LocalRedis) -> RunStore:
    settings = Settings(redis_url=module_redis.url, lease_s=0.3)
    return RunStore(redis.Redis.from_url(module_redis.url), settings)


@pytest.fixture
def app(module_redis: LocalRedis) -> Celery:
    """A Celery app on the module's Redis, as a worker's (no worker consumes its queues)."""
    app = Celery("every-run-ends", set_as_current=False)
    app.conf.update(celery_config(Settings(redis_url=module_redis.url)))
    return app


def new_run(store: RunStore, total: int, cap: int, group: str | None = None) -> str:
    run_id = new_run_id(group) if group else uuid4().hex
    request = MapReduceRequest(
        task="t", mapper=scripted("m"), reducer=scripted("r"), item_count=total,
        max_concurrent=cap, group=group,
    )  # fmt: skip
    store.create_run(run_id, request, items(total))
    return run_id


def declare(store: RunStore, limit: int, group: str | None = None) -> str:
    group = group or f"g-{uuid4().hex[:12]}"
    presence.refresh(store.client, "host-a", 60_000)
    group_limits.declare(store.client, "host-a", {group: limit}, 60_000)
    return group


def lease(store: RunStore, run_id: str, member: str) -> float | None:
    return store.client.zscore(RunKeys(run_id).leases, member)


def test_members_a_batch_could_not_hand_back_are_published_by_the_watchdog(
    store: RunStore,
) -> None:
    run_id = new_run(store, total=4, cap=4)
    assert store.start(run_id, node_name()).admitted == [0, 1, 2, 3]
    store.confirm_published(run_id, node_name(), ["0", "1", "2", "3"])
    # The batch's worker is full, and the broker is out of reach when it hands two back.
    unreachable = Celery("no-broker", set_as_current=False)
    unreachable.conf.update(broker_url="redis://127.0.0.1:1/0", task_publish_retry=False)
    keeper = LeaseKeeper(store, 0.1, store.settings.lease_s)
    runtime = SimpleNamespace(app=unreachable, store=store, keeper=keeper)
    lanes._hand_back(runtime, run_id, [2, 3])  # type: ignore[arg-type]
    expiry = lease(store, run_id, "3")
    assert expiry is not None and expiry < QUEUED, "held under a lease that expires"
    while store.now_ms() <= expiry:  # Redis's clock passes the lease (a fraction of a second)
        time.sleep(0.01)
    assert sorted(store.sweep(run_id, "watchdog").republish) == ["2", "3"]
    assert lease(store, run_id, "0") == QUEUED, "the members it never took wait as they were"


def test_a_grouped_run_whose_request_cannot_be_read_ends_and_frees_its_slots(
    store: RunStore, app: Celery
) -> None:
    group = declare(store, 2)
    unreadable = new_run(store, total=2, cap=2, group=group)
    waiting = new_run(store, total=2, cap=2, group=group)
    assert store.start(unreadable, node_name()).admitted == [0, 1]
    store.confirm_published(unreadable, node_name(), ["0", "1"])
    assert store.start(waiting, node_name()).admitted == [], "the group is full"
    store.client.hset(RunKeys(unreadable).run, "request", UNREADABLE)
    steps.sweep_run(app, store, unreadable)
    status = store.status(unreadable)
    assert status is not None and status.state == "failed" and status.in_flight == 0
    assert status.error is not None and "cannot read this run's request" in status.error
    # Its slots went to the other run of the group, whose members were published.
    assert group_limits.in_flight(store.client, group) == 2
    assert [lease(store, waiting, m) for m in ("0", "1")] == [QUEUED, QUEUED]


def test_members_let_in_by_a_bulk_cancel_are_published(store: RunStore, app: Celery) -> None:
    group = declare(store, 1)
    running = new_run(store, total=3, cap=3, group=group)
    cancelled = new_run(store, total=3, cap=3, group=group)
    assert store.start(running, node_name()).admitted == [0]
    store.confirm_published(running, node_name(), ["0"])
    assert store.start(cancelled, node_name()).admitted == []
    declare(store, 3, group)  # the group's limit is raised to 3 ...
    store.request_cancel(cancelled, "test")  # ... and the waiting run cancelled
    sweep = store.sweep(cancelled, node_name())
    assert sweep.unstarted == range(0, 3)
    steps.end_cancelled_members(app, store, cancelled, sweep)
    # Ending the never-published range let in the other run's members: they were published.
    assert group_limits.in_flight(store.client, group) == 3
    assert [lease(store, running, m) for m in ("0", "1", "2")] == [QUEUED] * 3


def test_members_a_sweep_took_over_in_an_unreadable_run_are_ended(
    store: RunStore, app: Celery
) -> None:
    """A worker holding the members of a run already being ended as unreadable was replaced:
    the sweep that finds their leases expired re-leases them to end them, and they end."""
    run_id = new_run(store, total=2, cap=2)
    assert store.start(run_id, node_name()).admitted == [0, 1]
    store.confirm_published(run_id, node_name(), ["0", "1"])
    start = AgentStart(run_id=run_id, name="m")
    for member in ("0", "1"):
        assert store.claim(run_id, member, f"gone-{member}", 60, start).action == "run"
    store.client.hset(RunKeys(run_id).run, "request", UNREADABLE)
    store.request_cancel(run_id, "an earlier sweep found it unreadable")
    store.client.zadd(RunKeys(run_id).leases, {"0": 0, "1": 0})  # their worker is gone
    steps.sweep_run(app, store, run_id)
    status = store.status(run_id)
    assert status is not None and status.state == "cancelled" and status.in_flight == 0
    assert status.counts["cancelled"] == 2


def test_a_group_is_read_from_the_run_not_from_its_request(store: RunStore) -> None:
    group = declare(store, 1)
    run_id = new_run(store, total=1, cap=1, group=group)
    store.client.hset(RunKeys(run_id).run, "request", UNREADABLE)
    assert store.start(run_id, node_name()).admitted == [0]
    assert store.client.smembers(GroupKeys(group).inflight) == {f"{run_id}:0".encode()}


def test_members_handed_back_while_redis_is_away_are_published_all_the_same(
    store: RunStore, app: Celery, module_redis: LocalRedis
) -> None:
    run_id = new_run(store, total=2, cap=2)
    assert store.start(run_id, node_name()).admitted == [0, 1]
    store.confirm_published(run_id, node_name(), ["0", "1"])
    # The run store is out of reach (no retries), the broker is not.
    away = RunStore(redis.Redis(port=1, socket_connect_timeout=1), store.settings)
    keeper = LeaseKeeper(store, 0.1, store.settings.lease_s)
    queued = store.client.llen("agents")
    lanes._hand_back(SimpleNamespace(app=app, store=away, keeper=keeper), run_id, [0, 1])  # type: ignore[arg-type]
    assert store.client.llen("agents") == queued + 2, "their messages were sent"


def test_an_unreadable_run_leaves_a_member_a_live_execution_claimed_to_it(
    store: RunStore, app: Celery
) -> None:
    group = declare(store, 1)
    run_id = new_run(store, total=1, cap=1, group=group)
    assert store.start(run_id, node_name()).admitted == [0]
    store.client.hset(RunKeys(run_id).run, "request", UNREADABLE)
    store.client.zadd(RunKeys(run_id).leases, {"0": 0})  # its admitter died unconfirmed
    sweep = store.sweep(run_id, node_name())
    assert sweep.republish == ["0"]
    # A worker that can read the request (another version) claims it before the run is ended.
    live = store.claim(run_id, "0", "live", 60, AgentStart(run_id=run_id, name="m_0"))
    assert live.action == "run"
    steps.end_unreadable_run(app, store, run_id, sweep, "unknown kind")
    assert store.stored_output(run_id, "0") is None, "the live execution ends it"
    assert store.client.hget(RunKeys(run_id).holders, "0") == b"live"
    assert group_limits.in_flight(store.client, group) == 1, "its slot stays taken"


def test_an_unreadable_run_ends_failed_whoever_worded_the_problem(
    store: RunStore, app: Celery
) -> None:
    run_id = new_run(store, total=1, cap=1)
    store.client.hset(RunKeys(run_id).run, "request", UNREADABLE)
    # An earlier pass, by a worker whose validation words the problem differently.
    store.request_cancel(run_id, f"{steps.UNREADABLE} worded by another version")
    steps.sweep_run(app, store, run_id)
    status = store.status(run_id)
    assert status is not None and status.state == "failed"


def test_an_unreadable_run_whose_final_agent_was_taken_over_ends(
    store: RunStore, app: Celery
) -> None:
    run_id = new_run(store, total=1, cap=1)
    assert store.start(run_id, node_name()).admitted == [0]
    output = AgentOutput(name="m_0")
    end = AgentEnd(run_id=run_id, name="m_0", index=0, outcome="ok")
    assert store.complete(run_id, "0", output, [end], node=node_name()).stored
    assert store.gate_final(run_id, node_name(), "")[0] == "admitted"
    start = AgentStart(run_id=run_id, name="reducer")
    assert store.claim(run_id, "final", "gone", 60, start).action == "run"
    store.client.hset(RunKeys(run_id).run, "request", UNREADABLE)
    store.request_cancel(run_id, "cancelled by its owner")
    store.client.zadd(RunKeys(run_id).leases, {"final": 0})  # its worker died
    steps.sweep_run(app, store, run_id)
    status = store.status(run_id)
    assert status is not None and status.state == "cancelled" and status.in_flight == 0


def test_a_retry_in_a_cancelled_run_ends_its_member_at_once(store: RunStore) -> None:
    """The retry of a delivery (or a takeover from a dead process) in a cancelled run takes the
    member, so that its cancelled output is stored now, not after the dead attempt's lease."""
    run_id = new_run(store, total=1, cap=1)
    assert store.start(run_id, node_name()).admitted == [0]
    start = AgentStart(run_id=run_id, name="m_0")
    assert store.claim(run_id, "0", "first", 60, start).action == "run"
    store.request_cancel(run_id, "test")
    retry = store.claim(run_id, "0", "retry", 60, start, gone_holder="first")
    assert (retry.action, retry.input) == ("cancelled", "test")
    output = AgentOutput.not_run("m_0", "cancelled", "cancelled: test")
    end = AgentEnd(run_id=run_id, name="m_0", index=0, outcome="cancelled")
    completion = store.complete(run_id, "0", output, [end], node=node_name(), token="retry")
    assert completion.status == "stored"


class SweepsDuringWrites(redis.Redis):
    """A Redis client whose transactions first wait out ``wait_s`` and let a watchdog claim
    the sweeps then due: a watchdog pass landing while a run is being written."""

    claimed: list[str]

    def interleave(self, store: RunStore, wait_s: float) -> None:
        self.claimed = []
        self._store, self._wait_s = store, wait_s

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        if transaction and hasattr(self, "_store"):
            execute = pipe.execute

            def execute_after_a_sweep(raise_on_error: bool = True) -> Any:
                due = self._store.now_ms() + int(self._wait_s * 1000)
                while self._store.now_ms() < due:  # the run's first sweep interval passes
                    time.sleep(self._wait_s / 4)
                self.claimed += self._store.claim_sweeps(10, 60)
                return execute(raise_on_error)

            pipe.execute = execute_after_a_sweep  # type: ignore[method-assign]
        return pipe


def test_a_run_being_written_is_not_swept_before_it_is_written(module_redis: LocalRedis) -> None:
    client = SweepsDuringWrites.from_url(module_redis.url)
    store = RunStore(client, Settings(redis_url=module_redis.url, sweep_s=0.05))
    client.interleave(store, wait_s=0.2)  # four sweep intervals
    run_id = new_run(store, 3, 1)
    # The watchdog ran while the run was written, past the run's first sweep time...
    assert run_id not in client.claimed
    # ...and the written run is due within a sweep interval, as any run.
    del client._store
    wait_for(lambda: run_id in store.claim_sweeps(10, 60), "the written run came due", 30)
