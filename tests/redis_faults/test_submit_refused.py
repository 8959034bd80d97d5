"""A submit that a full Redis refuses raises ``WritesRefusedError`` with Redis's words and
leaves nothing behind: no run state, no entry in the run indexes, no message queued."""

from __future__ import annotations

import pytest

from orchestrator import Client, OrchestratorError, WritesRefusedError
from orchestrator.local import LocalRedis
from orchestrator.state.keys import ACTIVE_RUNS, RECENT_RUNS
from tests.helpers import items, scripted
from tests.redis_faults.test_redis_full import fill

PASSWORD = "submit-secret-51c9"


@pytest.fixture
def server() -> LocalRedis:
    server = LocalRedis(password=PASSWORD)
    yield server  # type: ignore[misc]
    server.stop()


def assert_nothing_left(client: Client) -> None:
    assert client.redis.keys("ao:run:*") == []
    assert client.redis.zcard(ACTIVE_RUNS) == 0 and client.redis.zcard(RECENT_RUNS) == 0
    assert client.redis.llen("coordinator") == 0


def test_a_submit_to_a_full_redis_is_refused_clearly(server: LocalRedis) -> None:
    client = Client(redis_url=server.url)
    fill(client.redis)
    with pytest.raises(WritesRefusedError) as refused:
        client.map_reduce("Full", items(3), scripted("m"), scripted("r"), 3)
    assert isinstance(refused.value, OrchestratorError)
    assert "Redis refuses writes" in str(refused.value) and "maxmemory" in str(refused.value)
    assert PASSWORD not in str(refused.value)
    assert_nothing_left(client)


def test_a_submit_refused_part_way_leaves_nothing_behind(server: LocalRedis) -> None:
    client = Client(redis_url=server.url)
    # Room for the first, small writes of a submit but not for its items: Redis counts a
    # command's bytes as they arrive, so the items (2 MB in one command) are refused after the
    # run was made active.
    client.redis.config_set("maxmemory-policy", "noeviction")
    client.redis.config_set("maxmemory", int(client.redis.info("memory")["used_memory"]) + 500_000)
    big = [f"{i:06d}" + "x" * 2000 for i in range(1000)]
    with pytest.raises(WritesRefusedError):
        client.map_reduce("Big", big, scripted("m"), scripted("r"), 3)
    assert_nothing_left(client)
    client.redis.config_set("maxmemory", 0)
    client.map_reduce("Fits", items(3), scripted("m"), scripted("r"), 3)
    assert client.redis.zcard(ACTIVE_RUNS) == 1 and client.redis.llen("coordinator") == 1
