"""Lanes spread a run over the worker processes: a lane goes on in its thread only while its
process runs no more than its share of the run (the run's cap over the live worker processes,
read from their presence in Redis)."""

from __future__ import annotations

from contextlib import ExitStack

import redis

from orchestrator.local import LocalRedis
from orchestrator.state import presence
from workers.execution.lanes import Lane
from workers.execution.shares import RunShares, fair_share


def test_a_process_s_share_is_the_cap_over_the_live_processes_rounded_up() -> None:
    assert fair_share(64, 2) == 32
    assert fair_share(5, 2) == 3
    assert fair_share(3, 0) == 3  # no worker seen yet: the whole run


def test_a_process_over_its_share_of_a_run_lets_the_next_member_go_to_the_broker(
    private_redis: LocalRedis,
) -> None:
    client = redis.Redis.from_url(private_redis.url)
    for host in ("w1@a", "w2@a"):
        presence.refresh(client, host, 60_000)
    shares = RunShares()
    with ExitStack() as running:
        for _ in range(2):
            running.enter_context(shares.running("run"))
        assert not shares.over("run", 4, client), "two of four on two processes: its share"
        assert not shares.over("other", 4, client)
        running.enter_context(shares.running("run"))
        assert shares.over("run", 4, client), "three of four: more than its share"
        lane = Lane(1.0, lambda: shares.over("run", 4, client))
        assert not lane.wants_next(0.01), "a short member's lane stops: over its share"
        assert Lane(1.0).wants_next(0.01), "a lane that is not over its share goes on"
    assert not shares.over("run", 4, client), "its members ended"
