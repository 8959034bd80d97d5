"""Reading a run never fails because Redis refuses writes: a full Redis refuses transactions
even of reads, and the status's probe of writes meets other refusals (``min-replicas-to-write``)
that are no reason for a read to fail."""

from __future__ import annotations

from orchestrator import Client
from orchestrator.cli.watch import Watcher
from orchestrator.local import LocalRedis
from tests.helpers import items, scripted
from tests.redis_faults.test_redis_full import fill


def test_status_reads_a_run_while_redis_refuses_writes_for_want_of_replicas(
    private_redis: LocalRedis,
) -> None:
    client = Client(redis_url=private_redis.url)
    handle = client.map_reduce("Replicas", items(2), scripted("m"), scripted("r"), 2)
    client.redis.config_set("min-replicas-to-write", 1)  # no replica: every write is refused
    status = handle.status()
    assert status.state == "pending" and status.total == 2
    assert status.writes_refused is None  # not a full Redis: nothing for a run to wait out


def test_the_watch_feed_reads_a_run_while_redis_is_full(private_redis: LocalRedis) -> None:
    client = Client(redis_url=private_redis.url)
    handle = client.map_reduce("Watched", items(3), scripted("m"), scripted("r"), 3)
    fill(client.redis)
    assert handle.status().writes_refused is not None  # Redis refuses writes now
    watcher = Watcher(client.redis, handle.id)
    assert watcher.snapshot.state == "pending" and watcher.snapshot.total == 3
    assert watcher.read() >= 1  # the run's first events, read without a transaction
    watcher.read(block_ms=10)
