"""A full Redis (``maxmemory`` reached under ``noeviction``) is an outage of writes: workers stay
up, members keep their outputs and their leases, the run shows why it is paused, and it resumes
once Redis has room, with each member run once; past its deadline it ends with that reason."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator import Client
from orchestrator.local import LocalRedis, LocalWorker
from orchestrator.state.events import AgentStart
from orchestrator.state.keys import run_keys
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, run_cli, scripted, start_workers, wait_for
from tests.redis_faults.test_redis_restart import started

PASSWORD = "full-redis-secret-7f3a"
WAITING = "its output is kept until Redis has room"


@pytest.fixture
def full_redis(tmp_path: Path) -> Iterator[tuple[LocalRedis, list[LocalWorker]]]:
    server = LocalRedis(password=PASSWORD)
    env = {"ORCHESTRATOR_REDIS_URL": server.url, **FAST_TIMINGS}
    workers = start_workers(env, ["f1", "f2"], tmp_path, 4)
    yield server, workers
    for worker in workers:
        worker.stop()
    server.stop()


def fill(client: redis.Redis) -> int:
    """Make Redis refuse writes (a limit far below what it uses); returns Redis's time, ms."""
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def waiting_members(logs: list[Path]) -> int:
    return sum(log.read_text().count(WAITING) for log in logs)


def starts(handle: object) -> Counter[str]:
    events = handle.events(follow=False)  # type: ignore[attr-defined]
    return Counter(e.name for e in events if isinstance(e, AgentStart))


def test_a_full_redis_pauses_the_run_which_resumes_with_each_member_run_once(
    full_redis: tuple[LocalRedis, list[LocalWorker]], tmp_path: Path
) -> None:
    server, workers = full_redis
    client = Client(redis_url=server.url)
    logs = [tmp_path / f"{worker.name}.log" for worker in workers]
    mapper = scripted("mapper", latency_ms=1500)
    handle = client.map_reduce("Full", items(8), mapper, scripted("reducer"), 8)
    wait_for(lambda: started(handle, 8), "every member is inside its model call")
    full_at = fill(client.redis)

    # Every member ends its model call and keeps its output, which Redis refuses to store.
    wait_for(lambda: waiting_members(logs) >= 8, "every member waits for room with its output")
    status = handle.status()
    assert status.state == "running"
    assert status.writes_refused is not None and "maxmemory" in status.writes_refused
    shown = run_cli("status", handle.id, env={"ORCHESTRATOR_REDIS_URL": server.url})
    assert "Redis refuses writes" in shown.stdout and "maxmemory" in shown.stdout
    # The members' leases are renewed through the refusal, past the time they would have
    # expired without renewals: the moment a watchdog could have taken them over.
    lease_ms = float(FAST_TIMINGS["ORCHESTRATOR_LEASE_S"]) * 1000
    leases = run_keys(handle.id).leases

    def renewed_past_expiry() -> bool:
        scores = [score for _, score in client.redis.zrange(leases, 0, -1, withscores=True)]
        return len(scores) == 8 and min(scores) > full_at + 2 * lease_ms

    wait_for(renewed_past_expiry, "the leases were renewed while Redis refused writes")
    assert all(worker.process.poll() is None for worker in workers), "no worker died"

    client.redis.config_set("maxmemory", 0)
    result = handle.result(timeout=60)
    assert [o.outcome for o in result.map_outputs] == ["ok"] * 8
    assert [o.name for o in result.map_outputs] == [f"mapper_{i}" for i in range(8)]
    assert result.reducer_output is not None and result.reducer_output.outcome == "ok"
    calls = starts(handle)
    assert calls == Counter({**{f"mapper_{i}": 1 for i in range(8)}, "reducer": 1})
    assert handle.status().writes_refused is None
    assert all(worker.process.poll() is None for worker in workers), "no worker died"
    assert all(PASSWORD not in log.read_text() for log in logs)
    assert PASSWORD not in shown.stdout + shown.stderr
    # The same workers serve a new run.
    again = client.map_reduce("After", items(3), scripted("m"), scripted("r"), 3)
    assert [o.outcome for o in again.result(timeout=60).map_outputs] == ["ok"] * 3


def test_a_run_whose_deadline_passes_while_redis_is_full_ends_with_that_reason(
    full_redis: tuple[LocalRedis, list[LocalWorker]], tmp_path: Path
) -> None:
    server, workers = full_redis
    client = Client(redis_url=server.url)
    logs = [tmp_path / f"{worker.name}.log" for worker in workers]
    mapper = scripted("mapper", latency_ms=1000)
    handle = client.map_reduce("Late", items(12), mapper, scripted("reducer"), 4, deadline_s=4)
    wait_for(lambda: started(handle, 4), "the first window is inside its model calls")
    fill(client.redis)
    wait_for(lambda: waiting_members(logs) >= 4, "the window waits for room with its outputs")
    deadline_ms = int(client.redis.hget(run_keys(handle.id).run, "deadline_ms") or 0)

    def past_deadline() -> bool:
        seconds, micros = client.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000 > deadline_ms

    wait_for(past_deadline, "the deadline passed while Redis was full")
    client.redis.config_set("maxmemory", 0)
    status = handle.wait(timeout=60)
    # A deadline ends a run as it always does: cancelled, with that reason.
    assert status.state == "cancelled" and status.cancel_reason == "deadline exceeded"
    assert all(worker.process.poll() is None for worker in workers), "no worker died"
