"""A slow Redis (every command delayed on its way, as by a busy or distant server) makes leases
renew late, but never makes a member run twice while its holder is alive, and runs end."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import Client
from orchestrator.local import LocalRedis, LocalWorker
from orchestrator.state.events import AgentEnd, AgentStart
from tests.conftest import FAST_TIMINGS
from tests.deploy.delay_proxy import DelayProxy
from tests.helpers import items, scripted, start_workers, wait_for

# Leases as long as the slowest delay allows (a renewal's round trip, 2 s, must land within
# one): the production default is 30 s.
SLOW_TIMINGS = {**FAST_TIMINGS, "ORCHESTRATOR_LEASE_S": "8"}


@pytest.fixture
def behind_proxy(tmp_path: Path) -> Iterator[tuple[LocalRedis, DelayProxy, list[LocalWorker]]]:
    server = LocalRedis()
    proxy = DelayProxy(server.port)
    env = {"ORCHESTRATOR_REDIS_URL": proxy.url(), **SLOW_TIMINGS}
    workers = start_workers(env, ["d1", "d2"], tmp_path, 8)
    yield server, proxy, workers
    proxy.delay_s = 0
    for worker in workers:
        worker.stop()
    proxy.close()
    server.stop()


def events_of(handle: object, kind: type) -> list[object]:
    return [e for e in handle.events(follow=False) if isinstance(e, kind)]  # type: ignore[attr-defined]


def test_a_slow_redis_runs_no_member_twice_and_the_run_ends(
    behind_proxy: tuple[LocalRedis, DelayProxy, list[LocalWorker]],
) -> None:
    server, proxy, workers = behind_proxy
    client = Client(redis_url=server.url)  # the test sees Redis directly
    handle = client.map_reduce(
        "Slow", items(24), scripted("mapper", latency_ms=2000), scripted("reducer"), 16
    )
    proxy.delay_s = 0.2
    wait_for(lambda: len(events_of(handle, AgentEnd)) >= 4, "members end under a 200 ms delay", 90)
    proxy.delay_s = 2.0
    ended = len(events_of(handle, AgentEnd))
    # Members end, and others start, with every command 2 s late: renewals land late through
    # all of it, when a lease too short for the delay would be taken over.
    wait_for(lambda: len(events_of(handle, AgentEnd)) >= ended + 4, "members end under 2 s", 120)
    proxy.delay_s = 0
    result = handle.result(timeout=120)
    assert [o.outcome for o in result.map_outputs] == ["ok"] * 24
    starts = Counter(e.name for e in events_of(handle, AgentStart))  # type: ignore[attr-defined]
    assert starts == Counter({**{f"mapper_{i}": 1 for i in range(24)}, "reducer": 1})
    assert all(worker.process.poll() is None for worker in workers), "no worker died"
