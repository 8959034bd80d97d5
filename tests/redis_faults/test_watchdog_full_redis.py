"""A watchdog whose passes a full Redis refuses does not spin: it says so once per outage,
and waits at least its interval (longer as the refusals go on) between passes."""

from __future__ import annotations

from pathlib import Path

import redis

from orchestrator import Client
from orchestrator.local import LocalRedis
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, scripted, start_workers, wait_for
from tests.redis_faults.test_redis_full import fill
from tests.redis_faults.test_redis_restart import started

SKIPPED = "watchdog pass skipped"
INTERVALS = 6
SWEEP_S = "1"


def redis_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def refused_writes(client: redis.Redis) -> int:
    """How many commands Redis has refused for want of memory since it started."""
    oom = client.info("errorstats").get("errorstat_OOM", {})
    return int(oom.get("count", 0)) if isinstance(oom, dict) else 0


def test_a_full_redis_does_not_make_the_watchdog_spin(
    private_redis: LocalRedis, tmp_path: Path
) -> None:
    env = {
        "ORCHESTRATOR_REDIS_URL": private_redis.url,
        **FAST_TIMINGS,
        "ORCHESTRATOR_SWEEP_S": SWEEP_S,
    }
    (worker,) = start_workers(env, ["wd"], tmp_path, 2)
    log = tmp_path / "wd.log"
    client = redis.Redis.from_url(private_redis.url)
    try:
        # A run whose members end their calls and wait for room: its sweep falls due while
        # Redis refuses to push it on.
        mapper = scripted("mapper", latency_ms=1500)
        handle = Client(redis_url=private_redis.url).map_reduce(
            "Swept", items(2), mapper, scripted("r"), 2
        )
        wait_for(lambda: started(handle, 2), "the members are inside their model calls")
        fill(client)
        wait_for(lambda: handle.status().writes_refused is not None, "Redis refuses writes")
        wait_for(lambda: SKIPPED in log.read_text(), "the watchdog skipped a refused pass")
        refused_before, since = refused_writes(client), redis_ms(client)
        interval_ms = float(SWEEP_S) * 1000
        wait_for(
            lambda: redis_ms(client) >= since + INTERVALS * interval_ms,
            f"{INTERVALS} sweep intervals passed while Redis was full",
        )
        refused = refused_writes(client) - refused_before
        assert log.read_text().count(SKIPPED) == 1  # once per outage
        # At most one refused pass per interval, the members' tries to store their outputs
        # (backing off to 2 s) and the worker's heartbeat: a spinning watchdog has hundreds.
        assert refused <= 6 * (INTERVALS + 1), refused
        assert worker.process.poll() is None
        client.config_set("maxmemory", 0)
        assert [o.outcome for o in handle.result(timeout=60).map_outputs] == ["ok"] * 2
    finally:
        worker.stop()
