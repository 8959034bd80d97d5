"""A member that did not run (its claim found it timed out, or its run cancelled) ends at once:
that says nothing of how long the run's members take, so it neither lets its run's members
share messages nor keeps the member its end lets in for its thread. In a run of slow members,
Flower then shows that member as a ``tasks.agents.run_member`` task of its own."""

from __future__ import annotations

from pathlib import Path

import redis

from orchestrator import Client
from orchestrator.local import LocalRedis, LocalWorker, wait_for_workers
from orchestrator.models import AgentSpec
from orchestrator.state.keys import RunKeys
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, scripted, start_workers, wait_for
from tests.worker_processes.test_member_messages import TaskEvents
from workers.coordination.canvas import MEMBER_TASK

QUEUED = 4_000_000_000_000_000
"""A lease score that says the member waits in the queue (``common.lua``)."""


def _redis_ms(state: redis.Redis) -> int:
    seconds, micros = state.time()
    return int(seconds) * 1000 + int(micros) // 1000


def _assert_member_1_travelled_alone(events: TaskEvents, run_id: str) -> None:
    """Member 1 of the run was a task of its own. Member 2 travels alone either way (member 1
    took longer than the lane threshold): its announcement says the events have come."""
    last = f"{run_id}-m2"
    wait_for(lambda: last in events.succeeded(), "member 2 announced as a task")
    received = {e["uuid"] for e in events.received(MEMBER_TASK)}
    assert f"{run_id}-m1" in received, "member 1 is a task of its own"


def test_the_member_let_in_by_a_timed_out_claim_travels_as_a_task_of_its_own(
    private_redis: LocalRedis, tmp_path: Path
) -> None:
    env = {"ORCHESTRATOR_REDIS_URL": private_redis.url, **FAST_TIMINGS}
    # The watchdog and the coordinator steps, with no agents queue: a republished member
    # waits in the queue until a later worker takes it.
    coordinator = LocalWorker("co", env, ("coordinator",), log_path=tmp_path / "co.log")
    workers: list[LocalWorker] = [coordinator]
    wait_for_workers(redis.Redis.from_url(private_redis.url), [coordinator.hostname])
    events = TaskEvents(private_redis.url)
    try:
        events.wait_until_listening()
        (victim,) = start_workers(env, ["victim"], tmp_path, 1)
        workers.append(victim)
        client = Client(redis_url=private_redis.url)
        # Slow members (well over the lane threshold of 1 s) with a time limit that outlasts
        # the victim's lease: its member is published again before its limit passes.
        mapper = AgentSpec.model_validate(
            {**scripted("slow", latency_ms=1500).model_dump(), "timeout_s": 8.0}
        )
        handle = client.map_reduce("Slow", items(3), mapper, scripted("reducer"), 1)
        state = redis.Redis.from_url(private_redis.url)
        keys = RunKeys(handle.id)
        wait_for(lambda: state.hget(keys.deadlines, "0"), "member 0 claimed by the victim")
        victim.kill()
        deadline = int(state.hget(keys.deadlines, "0") or 0)
        wait_for(
            lambda: (state.zscore(keys.leases, "0") or 0) >= QUEUED and _redis_ms(state) > deadline,
            "member 0 published again and its time limit passed while it waited",
            interval_s=0.2,
        )
        # Its next claim finds it timed out: it ends at once, and lets member 1 in.
        (rescuer,) = start_workers(env, ["rescuer"], tmp_path, 4)
        workers.append(rescuer)
        result = handle.result(timeout=120)
        assert [o.outcome for o in result.map_outputs] == ["error", "ok", "ok"]
        assert "timed out" in (result.map_outputs[0].error or "")
        _assert_member_1_travelled_alone(events, handle.id)
    finally:
        events.stop()
        for worker in workers:
            worker.stop()


def test_the_member_let_in_by_a_member_that_failed_at_once_travels_as_a_task_of_its_own(
    private_redis: LocalRedis, tmp_path: Path
) -> None:
    """A member that fails at once (its request refused) says nothing of how long the others
    take: in a run of slow members the next one still gets a task of its own."""
    env = {"ORCHESTRATOR_REDIS_URL": private_redis.url, **FAST_TIMINGS}
    events = TaskEvents(private_redis.url)
    workers: list[LocalWorker] = []
    try:
        workers.extend(start_workers(env, ["lane"], tmp_path, 4))
        events.wait_until_listening()
        client = Client(redis_url=private_redis.url)
        mapper = scripted("slow", latency_ms=1500, fail_on="item-0")
        handle = client.map_reduce("Failing first", items(3), mapper, scripted("reducer"), 1)
        result = handle.result(timeout=120)
        assert [o.outcome for o in result.map_outputs] == ["error", "ok", "ok"]
        _assert_member_1_travelled_alone(events, handle.id)
    finally:
        events.stop()
        for worker in workers:
            worker.stop()
