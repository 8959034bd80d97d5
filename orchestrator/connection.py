"""One redis-py client per URL per process, riding through short Redis outages."""

from __future__ import annotations

from functools import lru_cache

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

# A command that meets a dropped connection (a Redis restart, a failover) is retried with
# backoff for about half a minute before the error reaches the caller: long enough for a
# restart, short enough that a Redis that is gone is reported. Every state change is a Lua
# script that is safe to run twice, so a retry after a lost reply does no harm.
RETRIES = 20
BACKOFF_CAP_S = 2.0


@lru_cache(maxsize=8)
def redis_client(url: str) -> redis.Redis:
    """A client for ``url`` shared by the whole process (redis-py pools are thread-safe)."""
    return redis.Redis.from_url(
        url,
        health_check_interval=30,
        socket_connect_timeout=5,
        retry=Retry(ExponentialWithJitterBackoff(cap=BACKOFF_CAP_S, base=0.05), RETRIES),
    )
