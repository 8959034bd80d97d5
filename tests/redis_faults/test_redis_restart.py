"""Redis restarts. With an append-only file a restart mid-run loses nothing and kills no
worker; without persistence (or after a flush) waiting clients get a clear error, late
completions create no keys, and the workers keep serving new runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import Client, RunNotFoundError
from orchestrator.local import LocalRedis, LocalWorker
from orchestrator.state.events import AgentStart
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, scripted, start_workers, wait_for


def started(handle: object, count: int) -> bool:
    events = handle.events(follow=False)  # type: ignore[attr-defined]
    return sum(isinstance(e, AgentStart) for e in events) >= count


@pytest.fixture
def workers_on(tmp_path: Path) -> Iterator[tuple[LocalRedis, list[LocalWorker]]]:
    server = LocalRedis(appendonly=True)
    env = {"ORCHESTRATOR_REDIS_URL": server.url, **FAST_TIMINGS}
    # Workers with free slots: each waits on the broker (a pending BRPOP) while it runs
    # members whose messages it has not acknowledged, which is when a lost connection used
    # to kill kombu's Redis consumer.
    workers = start_workers(env, ["r1", "r2", "r3"], tmp_path, 8)
    yield server, workers
    for worker in workers:
        worker.stop()
    server.stop()


def test_a_redis_restart_mid_run_loses_nothing_and_kills_no_worker(
    workers_on: tuple[LocalRedis, list[LocalWorker]],
) -> None:
    server, workers = workers_on
    client = Client(redis_url=server.url)
    mapper = scripted("mapper", latency_ms=3000)
    handle = client.map_reduce("Restart", items(12), mapper, scripted("reducer"), 12)
    wait_for(lambda: started(handle, 6), "members are running")
    server.shutdown()
    time.sleep(3)  # the outage: three seconds without Redis
    server.start()
    result = handle.result(timeout=60)  # the waiting client rides through the outage
    assert [o.outcome for o in result.map_outputs] == ["ok"] * 12
    assert [o.name for o in result.map_outputs] == [f"mapper_{i}" for i in range(12)]
    assert all(worker.process.poll() is None for worker in workers), "every worker survived"
    # The same workers, reconnected by themselves, serve a new run.
    again = client.map_reduce("After", items(3), scripted("m"), scripted("r"), 3)
    assert [o.outcome for o in again.result(timeout=60).map_outputs] == ["ok"] * 3


def test_a_flushed_run_is_reported_missing_and_late_completions_create_no_keys(
    workers_on: tuple[LocalRedis, list[LocalWorker]], tmp_path: Path
) -> None:
    server, workers = workers_on
    client = Client(redis_url=server.url)
    handle = client.map_reduce(
        "Flushed", items(4), scripted("mapper", latency_ms=2000), scripted("r"), 4
    )
    wait_for(lambda: started(handle, 4), "every member is running")
    client.redis.flushall()
    with pytest.raises(RunNotFoundError):
        handle.result(timeout=30)
    # The members' model calls end and their completions find no run: each delivery is
    # dropped (the worker logs it as ignored), and nothing of the run is written again.
    logs = [tmp_path / f"{worker.name}.log" for worker in workers]
    wait_for(
        lambda: sum(log.read_text().count(f"[{handle.id}-m") for log in logs) >= 8,
        "every member's delivery was received and then ignored",
    )
    assert client.redis.keys(f"*{handle.id}*") == []
    after = client.map_reduce("After", items(3), scripted("m"), scripted("r"), 3)
    assert [o.outcome for o in after.result(timeout=60).map_outputs] == ["ok"] * 3
