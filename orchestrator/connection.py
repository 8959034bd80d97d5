"""One redis-py client per URL per process."""

from __future__ import annotations

from functools import lru_cache

import redis


@lru_cache(maxsize=8)
def redis_client(url: str) -> redis.Redis:
    """A client for ``url`` shared by the whole process (redis-py pools are thread-safe)."""
    return redis.Redis.from_url(url, health_check_interval=30, socket_connect_timeout=5)
