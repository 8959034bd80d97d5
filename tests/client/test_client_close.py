"""``Client.close()`` and ``with Client() as client:`` close what the client opened (its Redis
pool, its broker connections), never a pool another live client or the process still uses.
Each test has a redis-server of its own, so that ``CLIENT LIST`` shows only its connections."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from orchestrator import Client, tracing
from orchestrator.config.settings import Settings
from orchestrator.errors import ClientClosedError
from orchestrator.local import LocalRedis
from orchestrator.state.connection import store_client
from orchestrator.tracing import TracingConfigError
from tests.helpers import items, scripted


@pytest.fixture
def server() -> Iterator[LocalRedis]:
    own = LocalRedis()
    yield own
    own.stop()


@pytest.fixture
def watcher(server: LocalRedis) -> Iterator[redis.Redis]:
    """One connection of the test's own, which counts the others."""
    client = redis.Redis.from_url(server.url, single_connection_client=True)
    yield client
    client.close()


def others(watcher: redis.Redis) -> int:
    """The connections to the server besides the watcher's."""
    return len(watcher.client_list()) - 1


def use(client: Client) -> None:
    """What opens a client's connections: reads, and a submit (a write and a task message)."""
    client.workers()
    client.map_reduce("t", items(2), scripted("m"), scripted("r"))


def test_a_client_made_and_closed_50_times_leaves_no_connection_open(
    server: LocalRedis, watcher: redis.Redis
) -> None:
    assert others(watcher) == 0
    with Client(redis_url=server.url) as first:
        use(first)
        # The count sees a client's connections: Redis for the run, and the broker's.
        assert others(watcher) >= 2
    for _ in range(49):
        with Client(redis_url=server.url) as client:
            use(client)
    assert others(watcher) == 0


def test_closing_a_client_leaves_the_pool_another_live_client_shares(
    server: LocalRedis, watcher: redis.Redis
) -> None:
    first, second = Client(redis_url=server.url), Client(redis_url=server.url)
    assert first.redis is second.redis, "clients of one Redis share one pool"
    kept = second.redis.client_id()
    first.close()
    first.close()  # a second close lets go of nothing more
    assert second.redis.client_id() == kept, "the live client's connection was closed"
    use(second)
    second.close()
    assert others(watcher) == 0


def test_closing_a_client_leaves_the_process_wide_client_of_a_worker(
    server: LocalRedis, watcher: redis.Redis
) -> None:
    shared = store_client(Settings(redis_url=server.url))
    kept = shared.client_id()
    with Client(redis_url=server.url) as client:
        use(client)
    assert shared.client_id() == kept
    assert others(watcher) == 1  # the process-wide client's, still open


def test_a_closed_client_and_its_handles_refuse_use_instead_of_reopening_connections(
    server: LocalRedis, watcher: redis.Redis
) -> None:
    with Client(redis_url=server.url) as client:
        handle = client.map_reduce("t", items(2), scripted("m"), scripted("r"))
    assert others(watcher) == 0
    # Each would open a connection of a pool nothing closes any more.
    for use_after_close in (handle.status, client.workers, lambda: client.get_run(handle.id)):
        with pytest.raises(ClientClosedError):
            use_after_close()
    with pytest.raises(ClientClosedError):
        client.send_records([])
    assert others(watcher) == 0


def test_a_client_that_fails_to_start_holds_no_share_of_the_pool(
    server: LocalRedis, watcher: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tracing is set up once per process: another test in this process may have set it up
    # already, so its set-up is made to fail here as a bad OTEL_* configuration makes it.
    def refuse() -> bool:
        raise TracingConfigError("OTEL_TRACES_EXPORTER: no-such-exporter")

    with monkeypatch.context() as patch:
        patch.setattr(tracing, "configure", refuse)
        with pytest.raises(TracingConfigError):
            Client(redis_url=server.url)
    with Client(redis_url=server.url) as client:
        use(client)
    # The failed client's hold would keep the shared pool open after the last close.
    assert others(watcher) == 0
