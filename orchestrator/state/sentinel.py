"""Redis through Sentinel: the run store's client, and the transport options kombu and Celery
need, from kombu's own spelling of a Sentinel URL.

``ORCHESTRATOR_REDIS_URL="sentinel://h1:26379/0;sentinel://h2:26379/0"`` names the sentinels
(``;``-separated), the database, and the master's credentials (``sentinel://:PASSWORD@h1:26379/0``
or ``sentinel://user:PASSWORD@...``: the password of the Redis servers, not of the sentinels);
``ORCHESTRATOR_SENTINEL_MASTER`` names the monitored master. Sentinels that require a password
of their own (their ``requirepass``) get it from ``ORCHESTRATOR_SENTINEL_PASSWORD``, which
kombu and Celery pass as ``sentinel_kwargs``.

A connection asks the sentinels where the master is whenever it connects, also when it
reconnects to retry a command (``MasterConnection``), so a command that meets a failover (a
dropped connection, or a demoted master that answers READONLY) is retried by ``OutageRetry`` on
a connection to the new master.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

from orchestrator.state.connection import POOL_WAIT_S, OutageRetry, pool_size

SCHEME = "sentinel"
DEFAULT_SENTINEL_PORT = 26379
# Asking a sentinel where the master is: one quick try each (the next sentinel is asked at
# once); the command's own OutageRetry asks again, with backoff, while a failover is under way.
SENTINEL_TIMEOUT_S = 2.0


def is_sentinel_url(url: str) -> bool:
    """True when ``url`` names Redis sentinels (``sentinel://...``)."""
    return urlsplit(url.split(";", 1)[0]).scheme.lower() == SCHEME


@dataclass(frozen=True)
class SentinelAddress:
    """What a ``;``-separated list of ``sentinel://`` URLs says: the sentinels, the database
    and the master's credentials (those of the first URL that has any, as kombu reads them)."""

    sentinels: tuple[tuple[str, int], ...]
    db: int
    username: str | None
    password: str | None


def parse_sentinel_url(url: str) -> SentinelAddress:
    """Parse kombu's Sentinel URL list; ``ValueError`` (without the URL, which may hold a
    password) when a part is not a ``sentinel://host:port/db`` URL."""
    sentinels: list[tuple[str, int]] = []
    db, username, password = 0, None, None
    for position, part in enumerate(p for p in url.split(";") if p.strip()):
        parts = urlsplit(part.strip())
        if parts.scheme.lower() != SCHEME or not parts.hostname:
            raise ValueError(f"part {position + 1} of the URL is not sentinel://host:port/db")
        try:
            port = parts.port or DEFAULT_SENTINEL_PORT
            path = parts.path.strip("/")
            part_db = int(path) if path else 0
        except ValueError:
            raise ValueError(f"part {position + 1} of the URL has a bad port or db") from None
        sentinels.append((parts.hostname, port))
        if position == 0:
            db = part_db
        if password is None and parts.password:
            password = unquote(parts.password)
            username = unquote(parts.username) if parts.username else None
    if not sentinels:
        raise ValueError("the URL names no sentinel")
    return SentinelAddress(tuple(sentinels), db, username, password)


def sentinel_kwargs(sentinel_password: str | None) -> dict[str, Any]:
    """How to talk to the sentinels themselves (not to the master): short timeouts, no retry
    of one sentinel (the next is asked), and their own password if they require one."""
    kwargs: dict[str, Any] = {
        "socket_connect_timeout": SENTINEL_TIMEOUT_S,
        "socket_timeout": SENTINEL_TIMEOUT_S,
        "retry": Retry(NoBackoff(), 0),
    }
    if sentinel_password:
        kwargs["password"] = sentinel_password
    return kwargs


class MasterConnection(SentinelManagedConnection):
    """redis-py's Sentinel-managed connection, except that it asks the sentinels where the
    master is also when it reconnects to retry a command. redis-py asks them only when a
    connection is taken from the pool: a command whose connection dropped reconnects, on its
    retry, to the address it had (redis-py issue 3874). A command in flight when the master
    was killed then retried the dead server for the whole retry window, and one in flight when
    the master was demoted alive (a failover a busy machine's missed PINGs started) went on at
    that server, now a replica: its reads answered from a replica's dataset, stale while it
    resyncs, and its writes refused as READONLY until the retries ran out."""

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._sock:
            # Once, no retry of its own: the command's retry (OutageRetry) asks again.
            self._connect_retry()  # type: ignore[no-untyped-call, unused-ignore]
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call, unused-ignore]


class BlockingSentinelPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """redis-py's Sentinel pool, blocking like the plain pools of ``connection.py``: a thread
    that finds every connection taken waits for one instead of failing."""


def new_sentinel_client(
    url: str, master: str, sentinel_password: str | None, size: int
) -> redis.Redis:
    """A new client of the master that the sentinels of ``url`` monitor as ``master``, with a
    pool of ``size`` connections of its own (and its own connections to the sentinels)."""
    address = parse_sentinel_url(url)
    sentinel = Sentinel(list(address.sentinels), sentinel_kwargs=sentinel_kwargs(sentinel_password))  # type: ignore[no-untyped-call, unused-ignore]
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call, unused-ignore]
        master,
        connection_pool_class=BlockingSentinelPool,
        connection_class=MasterConnection,
        max_connections=size,
        timeout=POOL_WAIT_S,
        health_check_interval=30,
        socket_connect_timeout=5,
        retry=OutageRetry(),
        db=address.db,
        username=address.username or None,
        password=address.password or None,
    )
    return client


_sentinel_client = lru_cache(maxsize=8)(new_sentinel_client)


def sentinel_client(url: str, master: str, sentinel_password: str | None = None) -> redis.Redis:
    """A client of the master that the sentinels of ``url`` monitor as ``master``, shared by
    the whole process (pools sized as ``connection.size_pools`` says)."""
    return _sentinel_client(url, master, sentinel_password, pool_size())


def transport_options(master: str, sentinel_password: str | None) -> dict[str, Any]:
    """kombu's and Celery's options for a ``sentinel://`` broker or result backend."""
    options: dict[str, Any] = {"master_name": master}
    if sentinel_password:
        options["sentinel_kwargs"] = {"password": sentinel_password}
    return options


def probe_client(
    url: str, master: str, sentinel_password: str | None, timeout_s: float
) -> redis.Redis:
    """A client for one quick check of the master (no retries, no shared pool): the CLI's
    probe, which reports a Redis that is not there at once."""
    address = parse_sentinel_url(url)
    kwargs = {**sentinel_kwargs(sentinel_password), "socket_timeout": timeout_s}
    sentinel = Sentinel(list(address.sentinels), sentinel_kwargs=kwargs)  # type: ignore[no-untyped-call, unused-ignore]
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call, unused-ignore]
        master,
        connection_class=MasterConnection,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        db=address.db,
        username=address.username or None,
        password=address.password or None,
    )
    return client
