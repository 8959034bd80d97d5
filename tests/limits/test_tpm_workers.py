"""A tokens-per-minute pool holds across three real worker processes: a local server speaking
the OpenAI wire format counts every request's tokens when it arrives, in its own sliding window
of the pool's length, and refuses with a 429 any request that would pass the limit; the run's
calls together use more than twice the limit, so without the pool they would pass it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.limits.tpm_server import TokenLimitedServer
from orchestrator import AgentSpec, Client, ModelConfig
from orchestrator.local import LocalRedis
from orchestrator.state.events import AgentStart
from tests.conftest import FAST_TIMINGS, start_workers

# Three worker processes, then calls that wait out several windows: slow on a busy machine.
pytestmark = pytest.mark.timeout(300)

LIMIT = 2000
WINDOW_S = 2.0
ITEMS = 30  # about 160 tokens each by the server's count: 2.4 times the limit


@pytest.fixture
def server() -> Iterator[TokenLimitedServer]:
    api = TokenLimitedServer(limit=LIMIT, window_s=WINDOW_S, delay_s=0.05)
    yield api
    api.close()


def test_tpm_is_never_passed_in_any_window_across_three_workers(
    private_redis: LocalRedis, server: TokenLimitedServer, tmp_path: Path
) -> None:
    pools = {"openai:metered": {"tpm": LIMIT, "window_s": WINDOW_S}}
    env = {
        "ORCHESTRATOR_REDIS_URL": private_redis.url,
        **FAST_TIMINGS,
        **server.worker_env(),
        "ORCHESTRATOR_PROVIDER_LIMITS": json.dumps(pools),
    }
    workers = start_workers(env, ["tpm1", "tpm2", "tpm3"], tmp_path, concurrency=4)
    try:
        model = ModelConfig(
            provider="openai", model="metered", endpoint="limited", max_output_tokens=50
        )
        mapper = AgentSpec(name="m", model=model)
        items = [f"{i:03d} " + "x" * 400 for i in range(ITEMS)]
        client = Client(redis_url=private_redis.url)
        handle = client.map_reduce("Read", items, mapper, AgentSpec(name="r"), ITEMS)
        result = handle.result(300)
    finally:
        for worker in workers:
            worker.stop()
    assert result.all_succeeded(), [o.error for o in result.map_outputs if o.error]
    assert server.refused == 0, "a request passed the limit in the server's window"
    taken = sum(entry.tokens for entry in server.accepted)
    assert len(server.accepted) == ITEMS and taken > 2 * LIMIT
    assert server.busiest_window() <= LIMIT
    ran_on = {e.worker for e in handle.events(follow=False) if isinstance(e, AgentStart)}
    assert len(ran_on) == 3, "the calls came from all three workers"
