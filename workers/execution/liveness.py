"""Whether the worker process that holds a member's lease is gone: not slow, gone.

A lease says when its holder was last heard of; it cannot tell a dead holder from a slow one,
so a member whose holder died waits for its lease to expire. With RabbitMQ the dead worker's
messages are delivered again at once, and the new delivery finds the lease still live. It may
take the member over at once when the holder is *positively* gone:

- each worker process keeps one Redis connection of its own open, named
  ``ao-proc-<tag>`` (``CLIENT SETNAME``; redis-py names it again on every reconnection),
  with a random ``tag`` per process, and pings it every ``PING_S``;
- the lease tokens it claims members with end in ``.<tag>`` (``new_token()``), and only while
  that connection is up: a token names a process only once Redis has seen the name;
- when a process ends, SIGKILL included, the kernel closes its sockets and Redis drops the
  client at once: ``CLIENT LIST`` no longer shows the name.

``holder_gone()`` is true only when ``CLIENT LIST`` shows this process's own named connection
(so the list is from the Redis the names live on, and this process sees it) and not the
holder's. Anything else (a plain token, an old-style one, a Redis that refuses ``CLIENT
LIST``, a client without a pool such as a cluster client) says "not known to be gone", and the
member keeps waiting for its lease as before.

A false "gone" can only come from a live holder whose connection Redis dropped (a Redis
restart, until the holder's next ping reconnects; a network cut long enough for Redis to drop
the client). It costs a duplicate execution, never a wrong result: the holder's next lease
renewal, checkpoint or completion finds the lease taken and its result is discarded, as after
any takeover (``renew_lease.lua``, ``complete_member.lua``).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any
from uuid import uuid4

import redis

from workers.identity import CONNECTION_PREFIX, connection_name, process_tag

log = logging.getLogger(__name__)

PING_S = 1.0
"""How often the named connection is pinged: how soon it is named again after Redis lost it."""


def holder_process(token: str) -> str | None:
    """The connection name of the process a lease token names, or None when it names none."""
    head, dot, tag = token.rpartition(".")
    if not dot or not head or len(tag) != 12 or not all(c in "0123456789abcdef" for c in tag):
        return None
    return CONNECTION_PREFIX + tag


class ProcessPresence:
    """This process's named connection to Redis, kept open by a daemon thread."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._up = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pid = os.getpid()

    @property
    def up(self) -> bool:
        """Whether Redis has this process's named connection (as of the last ping)."""
        return self._up.is_set()

    def start(self) -> None:
        """Open the named connection (in the background) unless it is open already."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._up.clear()
            self._thread = threading.Thread(target=self._keep, name="ao-liveness", daemon=True)
            self._thread.start()

    def wait_up(self, timeout_s: float) -> bool:
        """Wait until the named connection is up (for tests and workers that start)."""
        return self._up.wait(timeout_s)

    def _connection(self) -> Any:
        pool = getattr(self._client, "connection_pool", None)
        if pool is None:  # a client without a pool (a cluster client): no named connection
            return None
        kwargs = {**pool.connection_kwargs, "client_name": connection_name()}
        return pool.connection_class(**kwargs)

    def _keep(self) -> None:
        connection = self._connection()
        if connection is None:
            log.info("no named Redis connection for this client: holders are never known gone")
            return
        stop = threading.Event()  # never set: the thread lives as long as the process
        while True:
            try:
                connection.send_command("PING")
                connection.read_response()
                self._up.set()
            except Exception as outage:  # Redis unreachable: tokens stop naming this process
                if self._up.is_set():
                    log.warning("named Redis connection lost (%s); reconnecting", outage)
                self._up.clear()
                connection.disconnect()
            stop.wait(PING_S)


# By client (a worker has one; a test process may have several Redis servers).
_presences: dict[int, tuple[redis.Redis, ProcessPresence]] = {}
_presence_lock = threading.Lock()


def process_presence(client: redis.Redis) -> ProcessPresence:
    """This process's presence on ``client``'s Redis, started on first use."""
    with _presence_lock:
        if id(client) not in _presences:
            _presences[id(client)] = (client, ProcessPresence(client))
        presence = _presences[id(client)][1]
    presence.start()
    return presence


def new_token(client: redis.Redis) -> str:
    """A fresh lease token; it names this process when Redis has its named connection."""
    token = uuid4().hex
    if process_presence(client).up:
        return f"{token}.{process_tag()}"
    return token


def holder_gone(client: redis.Redis, holder: str) -> bool:
    """True only when the process that ``holder`` (a lease token) names is positively gone:
    this process's named connection is in Redis's client list and the holder's is not."""
    name = holder_process(holder)
    if name is None or not process_presence(client).up:
        return False
    try:
        names = {entry.get("name") for entry in client.client_list(_type="normal")}
    except redis.RedisError as refused:  # e.g. an ACL without CLIENT LIST
        log.info("cannot list Redis clients (%s): holders are never known gone", refused)
        return False
    return connection_name() in names and name not in names
