"""Provider pools are fair to money: each HTTP attempt takes its own slot and its own count
against the per-minute limit, and a retry's back-off holds nothing. Real workers call a local
server speaking the OpenAI wire format, which refuses chosen calls with a 429."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from orchestrator import Client
from orchestrator.local import LocalRedis, LocalWorker
from orchestrator.state.keys import rate_key
from tests.conftest import FAST_TIMINGS
from tests.helpers import start_workers, wait_for
from tests.servers.model_server import SlowModelServer

POOLS = {
    "openai:one-at-a-time": {"max_concurrent": 1},
    "openai:counted": {"rpm": 100},
}
# Longer than B takes on any machine (publish, start, one call), and no longer than the
# retry wrapper waits: A's retry comes after B only if A gave its slot back.
LONG_BACKOFF_S = 30


@pytest.fixture(scope="module")
def api() -> Iterator[SlowModelServer]:
    server = SlowModelServer(delay_s=0.1)
    yield server
    server.close()


@pytest.fixture(scope="module")
def pool_client(
    module_redis: LocalRedis, api: SlowModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Client]:
    env = {
        "ORCHESTRATOR_REDIS_URL": module_redis.url,
        **FAST_TIMINGS,
        **api.worker_env(),
        "ORCHESTRATOR_PROVIDER_LIMITS": json.dumps(POOLS),
    }
    workers: list[LocalWorker] = start_workers(
        env, ["pools"], tmp_path_factory.mktemp("pool-logs"), concurrency=2
    )
    yield Client(redis_url=module_redis.url)
    for worker in workers:
        worker.stop()


def test_a_pool_slot_is_free_while_its_call_backs_off(
    pool_client: Client, api: SlowModelServer
) -> None:
    agent = api.agent("caller", model="one-at-a-time")
    # A 503, not a 429: a 429 that says when to retry pauses the whole pool (test_tpm.py).
    api.refuse("call A", times=1, retry_after_s=LONG_BACKOFF_S, status=503)
    first = pool_client.run_agent(agent, prompt="call A")
    try:
        wait_for(lambda: "call A" in api.refused, "A was refused", 60, 0.01)
        # A now sleeps out its Retry-After; B, on the pool's only slot, can run meanwhile.
        second = pool_client.run_agent(agent, prompt="call B")
        wait_for(
            lambda: "call B" in api.answered or api.received.count("call A") > 1,
            "B's answer or A's retry came",
            120,
            0.01,
        )
        assert api.received == ["call A", "call B"], "B ran while A backed off, before A's retry"
        assert second.result(timeout=60).output.succeeded()
    finally:
        first.cancel()  # ends A's back-off at once
    assert first.result(timeout=60).output.outcome == "cancelled"


def test_every_attempt_counts_against_the_per_minute_limit(
    pool_client: Client, api: SlowModelServer, module_redis: LocalRedis
) -> None:
    api.refuse("call C", times=2, retry_after_s=0)
    run = pool_client.run_agent(api.agent("counted", model="counted"), prompt="call C")
    assert run.result(timeout=60).output.succeeded()
    assert api.received.count("call C") == 3, "two refusals, then the answer"
    calls = redis.Redis.from_url(module_redis.url).zcard(rate_key("provider:openai:counted"))
    assert calls == 3, "one count per HTTP attempt, not one per model call"
