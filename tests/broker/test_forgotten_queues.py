"""A Redis that lost the broker's bindings (a failover to a replica that had not caught up, a
restart that kept nothing) drops what is published to the queues it forgot: the members
published meanwhile are published again once a worker finds itself forgotten."""

from __future__ import annotations

from pathlib import Path

import redis

from orchestrator import Client
from orchestrator.local import LocalRedis, LocalWorker, wait_for_workers
from orchestrator.state.keys import RunKeys, worker_tools_key
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, scripted, wait_for

QUEUED = 4_000_000_000_000_000  # orchestrator/state/lua/common.lua: a member waiting in the queue


def test_members_published_while_the_broker_had_forgotten_its_queues_are_published_again(
    private_redis: LocalRedis, tmp_path: Path
) -> None:
    env = {"ORCHESTRATOR_REDIS_URL": private_redis.url, **FAST_TIMINGS}
    state = redis.Redis.from_url(private_redis.url)
    # No worker serves the agents queue yet: the members wait there, confirmed as queued.
    coordinator = LocalWorker(
        "coord", env, queues=("coordinator", "tools", "learner"), concurrency=4,
        log_path=tmp_path / "coord.log",
    )  # fmt: skip
    agents: LocalWorker | None = None
    try:
        wait_for_workers(state, [coordinator.hostname])
        handle = Client(redis_url=private_redis.url).map_reduce(
            "Forgotten", items(4), scripted("mapper"), scripted("reducer"), 4
        )
        leases = RunKeys(handle.id).leases

        def queued() -> bool:
            scores = [score for _, score in state.zrange(leases, 0, -1, withscores=True)]
            return scores == [QUEUED] * 4 and state.llen("agents") == 4

        wait_for(queued, "four members wait in the agents queue")
        # What Redis forgot: the queue's messages (dropped, as a publish to an unbound queue
        # is), every binding and the worker's tools key (how a worker finds itself forgotten).
        bindings = [key for key in state.scan_iter("_kombu.binding.*")]
        state.delete("agents", worker_tools_key(coordinator.hostname), *bindings)
        wait_for(lambda: state.exists(worker_tools_key(coordinator.hostname)) == 1,
                 "the worker found itself forgotten and announced itself again")  # fmt: skip
        agents = LocalWorker("agents", env, queues=("agents",), log_path=tmp_path / "a.log")
        result = handle.result(timeout=60)
        assert [output.outcome for output in result.map_outputs] == ["ok"] * 4
    finally:
        for worker in (agents, coordinator):
            if worker is not None:
                worker.stop()
