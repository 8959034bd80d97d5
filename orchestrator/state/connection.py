"""One redis-py client per URL per process, riding through short Redis outages, with a
connection pool as large as the process's concurrency."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar, cast

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import RedisCluster
from redis.exceptions import AuthenticationError, AuthorizationError, OutOfMemoryError
from redis.retry import Retry

if TYPE_CHECKING:
    from orchestrator.config.settings import Settings

T = TypeVar("T")

# A command that meets a dropped connection (a Redis restart, a failover) is retried with
# backoff for about half a minute before the error reaches the caller: long enough for a
# restart, short enough that a Redis that is gone is reported. Every state change is a Lua
# script that is safe to run twice, so a retry after a lost reply does no harm.
RETRIES = 20
BACKOFF_CAP_S = 2.0
# redis-py counts these as connection errors, but a refused password or a missing permission
# is no outage: retrying would only delay the error by half a minute.
NOT_AN_OUTAGE = (AuthenticationError, AuthorizationError)

# redis-py's pools hold 100 connections by default and raise once they are all taken: a worker
# with 1,000 threads then fails members on a full pool. Pools here are blocking: a thread that
# finds every connection taken waits for one (up to POOL_WAIT_S, about as long as an outage is
# ridden through) instead of failing. Their size is the process's concurrency plus room for its
# own threads (heartbeat, cancel listener, watchdog, tool limits).
DEFAULT_POOL_SIZE = 100
POOL_HEADROOM = 32
POOL_WAIT_S = 30.0
_pool_size = DEFAULT_POOL_SIZE

WRITES_REFUSED = (OutOfMemoryError,)
"""What Redis answers while it refuses writes: it is full (``maxmemory`` reached under
``noeviction``, the policy a queue needs). Reads, deletions and a script's writes after its
first still pass. Like an outage it ends (memory is freed, the limit raised), so a refused
write is waited out, never taken as the failure of what it was writing."""
REFUSAL_WAIT_CAP_S = 2.0


def refusal_wait_s(attempt: int) -> float:
    """How long to wait before trying a refused write again, the ``attempt``-th time (from 0):
    doubling from 50 ms to ``REFUSAL_WAIT_CAP_S``, so a write goes through within about two
    seconds of Redis having room again."""
    return float(min(0.05 * 2 ** min(attempt, 8), REFUSAL_WAIT_CAP_S))


def wait_out_refusals(
    write: Callable[[], T],
    waiting: Callable[[str], object],
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """``write()``, tried again while Redis refuses writes (it is full) until it goes through;
    ``waiting`` gets Redis's words at the first refusal (to say what waits), ``sleep`` the
    waits between tries (a cancellable sleep may end the wait by raising)."""
    for attempt in itertools.count():
        try:
            return write()
        except WRITES_REFUSED as refused:
            if attempt == 0:
                waiting(refusal_message(refused))
            sleep(refusal_wait_s(attempt))
    raise AssertionError("unreachable")  # itertools.count never ends


def write_refusal(error: BaseException) -> BaseException | None:
    """The refused write behind ``error``: itself, or what it was raised from (kombu reraises
    Redis's errors as its own), else None."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, WRITES_REFUSED):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def refusal_message(error: BaseException) -> str:
    """Redis's own words for a refused write, without what redis-py adds before them (a
    pipeline's command and its arguments, which may carry run data)."""
    return str(error).rpartition(" of pipeline caused error: ")[2]


class OutageRetry(Retry):
    """redis-py's ``Retry`` (exponential backoff with jitter, capped at ``BACKOFF_CAP_S``, for
    ``RETRIES`` tries), except that credentials Redis refuses are reported at once."""

    def __init__(self) -> None:
        super().__init__(ExponentialWithJitterBackoff(cap=BACKOFF_CAP_S, base=0.05), RETRIES)

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        def retryable(error: Exception) -> bool:
            if isinstance(error, NOT_AN_OUTAGE):
                return False
            return is_retryable(error) if is_retryable is not None else True

        return super().call_with_retry(do, fail, retryable, with_failure_count)


def pool_size_for(concurrency: int) -> int:
    """The connections a process running ``concurrency`` threads of work may need at once."""
    return max(DEFAULT_POOL_SIZE, concurrency + POOL_HEADROOM)


def size_pools(concurrency: int) -> None:
    """Size the pools of the clients this process creates from now on for ``concurrency``
    threads of work (a worker calls this as it starts, before it connects)."""
    global _pool_size
    _pool_size = pool_size_for(concurrency)
    redis_client.cache_clear()
    cluster_client.cache_clear()


def pool_size() -> int:
    """The size of the pools this process's clients get."""
    return _pool_size


def new_redis_client(url: str) -> redis.Redis:
    """A new client for ``url``, with a blocking pool of its own, outage retries and health
    checks (``redis_client`` is the process's shared one)."""
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=_pool_size,
        timeout=POOL_WAIT_S,
        health_check_interval=30,
        socket_connect_timeout=5,
        retry=OutageRetry(),
    )
    return redis.Redis(connection_pool=pool)


@lru_cache(maxsize=8)
def redis_client(url: str) -> redis.Redis:
    """A client for ``url`` shared by the whole process (redis-py pools are thread-safe)."""
    return new_redis_client(url)


def new_cluster_client(url: str) -> RedisCluster:
    """A new Redis Cluster client found from the node at ``url``, with the same outage retries
    and pool sizes as ``new_redis_client`` (a blocking pool per node)."""
    return RedisCluster.from_url(
        url,
        retry=OutageRetry(),
        connection_pool_class=redis.BlockingConnectionPool,
        max_connections=_pool_size,
        timeout=POOL_WAIT_S,
        socket_connect_timeout=5,
    )


@lru_cache(maxsize=8)
def cluster_client(url: str) -> RedisCluster:
    """A Redis Cluster client for ``url`` shared by the whole process."""
    return new_cluster_client(url)


def store_client(settings: Settings) -> redis.Redis:
    """The client of the run store that ``settings`` name, shared by the whole process and
    never closed: a Redis Cluster client when ``settings.redis_cluster`` is on (a
    ``RedisCluster`` offers the commands the store uses under the same names; scripts and
    pipelines that need it tell the two apart, so it is typed as the one callers already take),
    through Sentinel for a ``sentinel://`` URL (``orchestrator/state/sentinel.py``), else
    ``redis_client``."""
    return _store_client(settings, shared=True)


def new_store_client(settings: Settings) -> redis.Redis:
    """A new client of the run store that ``settings`` name, with pools of its own, for an
    owner that closes it (``close_client``) when done with it."""
    return _store_client(settings, shared=False)


def _store_client(settings: Settings, shared: bool) -> redis.Redis:
    from orchestrator.state import sentinel  # imports this module

    url = settings.redis_url
    if settings.redis_cluster:
        return cast(redis.Redis, cluster_client(url) if shared else new_cluster_client(url))
    if sentinel.is_sentinel_url(url):
        assert settings.sentinel_master is not None  # the settings check it
        password = settings.sentinel_password
        secret = password.get_secret_value() if password is not None else None
        if shared:
            return sentinel.sentinel_client(url, settings.sentinel_master, secret)
        return sentinel.new_sentinel_client(url, settings.sentinel_master, secret, pool_size())
    return redis_client(url) if shared else new_redis_client(url)


def close_client(client: redis.Redis) -> None:
    """Close every connection ``client`` opened: its pool's, a Cluster client's to each node,
    and a Sentinel client's to the sentinels it asks. For a client of ``new_store_client``
    (the shared ones stay open for the life of the process)."""
    if isinstance(client, RedisCluster):
        client.close()
        return
    pool = client.connection_pool
    pool.disconnect()
    manager = getattr(pool, "sentinel_manager", None)
    for asked in getattr(manager, "sentinels", ()):
        asked.connection_pool.disconnect()


def get_many(client: redis.Redis, keys: list[str]) -> list[bytes | None]:
    """The values of ``keys`` in one ``MGET``, or on a Redis Cluster in its per-shard form
    (keys of different workers or agents live on different shards, and one MGET must stay
    on one)."""
    if isinstance(client, RedisCluster):
        return cast(list[bytes | None], client.mget_nonatomic(keys))
    return cast(list[bytes | None], client.mget(keys))
