"""A worker is warm when it announces itself: what a wide first run would otherwise pay for
(the run scripts in Redis, connections of its pools, its pool's threads) is done by then."""

from __future__ import annotations

from pathlib import Path

import psutil
import redis

from orchestrator.local import LocalRedis
from orchestrator.state.scripts import _script
from tests.conftest import FAST_TIMINGS
from tests.helpers import start_workers
from workers.warmup import MEMBER_SCRIPTS, WARM_CONNECTIONS

THREADS = 40


def test_a_worker_announced_on_a_fresh_redis_has_the_scripts_connections_and_threads(
    private_redis: LocalRedis, tmp_path: Path
) -> None:
    env = {"ORCHESTRATOR_REDIS_URL": private_redis.url, **FAST_TIMINGS}
    # start_workers returns once the worker announced itself (its presence in Redis).
    (worker,) = start_workers(env, ["warm"], tmp_path, THREADS)
    try:
        state = redis.Redis.from_url(private_redis.url)
        shas = [_script(name, True).sha for name in MEMBER_SCRIPTS]
        assert state.script_exists(*shas) == [True] * len(shas), "no run has run yet"
        # Connections of this worker's process: at least the warm ones of its state pool (as
        # many as its threads, up to WARM_CONNECTIONS).
        port = int(private_redis.url.rsplit(":", 1)[1].split("/")[0])
        process = psutil.Process(worker.pid)
        to_redis = [c for c in process.net_connections("tcp") if c.raddr and c.raddr.port == port]
        assert len(to_redis) >= min(WARM_CONNECTIONS, THREADS)
        # Every thread of its pool started (Celery's thread pool starts one per task).
        assert process.num_threads() >= THREADS
    finally:
        worker.stop()
