"""A worker SIGKILLed mid-run: the run completes on the workers that are left, each item once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import redis

from orchestrator import Client
from orchestrator.local import LocalRedis
from orchestrator.state.events import AgentStart
from orchestrator.state.keys import RunKeys
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, scripted, start_workers, wait_for


def test_run_survives_a_sigkilled_worker_and_runs_each_item_once(tmp_path: Path) -> None:
    # A Redis and workers of its own, so that the victim surely holds members of this run.
    server = LocalRedis()
    env = {"ORCHESTRATOR_REDIS_URL": server.url, **FAST_TIMINGS}
    victim, survivor = start_workers(env, ["victim", "survivor"], tmp_path, concurrency=3)
    try:
        client = Client(redis_url=server.url)
        handle = client.map_reduce(
            "Survive", items(12), scripted("mapper", latency_ms=1500), scripted("reducer"), 6
        )
        holders = RunKeys(handle.id).holders
        state = redis.Redis.from_url(server.url)

        def running() -> int:
            """Members an execution holds (others are queued or prefetched)."""
            values = [v.decode() for v in state.hvals(holders)]
            return sum(1 for v in values if not v.startswith(("a:", "r:")))

        wait_for(lambda: running() >= 6, "the first window started", 30)
        victim.kill()

        result = handle.result(timeout=60)
        assert handle.status().state == "succeeded"
        assert [o.name for o in result.map_outputs] == [f"mapper_{i}" for i in range(12)]
        assert all(o.outcome == "ok" for o in result.map_outputs)
        starts = Counter(e.index for e in handle.events(follow=False) if isinstance(e, AgentStart))
        rerun = [index for index, count in starts.items() if index is not None and count > 1]
        assert rerun, "the killed worker held members that had to run again"
        # The chord fired its body once: one reducer start, one reducer output.
        assert starts[None] == 1
        assert result.reducer_output is not None and result.reducer_output.outcome == "ok"
    finally:
        victim.kill()
        survivor.stop()
        server.stop()
