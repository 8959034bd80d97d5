"""What a ``Client`` opens, and how ``Client.close()`` closes it without closing what another
live client (or a worker in the same process) still uses.

- Redis: clients of one Redis share one redis-py client (one pool), counted: each ``Client``
  holds it (``hold_store_client``) and lets it go on ``close()`` (``release_store_client``);
  the last to let go closes its connections. It is never the process's shared client of
  ``store_client``, which a worker's runtime uses for its whole life.
- The broker: each client sends through a Celery app and a broker connection pool of its own
  (``TaskSender``), not kombu's process-wide pools, which every app of the process with the
  same broker URL shares (a worker's included), so closing it closes only its connections.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery

from orchestrator.config.celery_config import celery_config
from orchestrator.config.settings import Settings
from orchestrator.errors import ClientClosedError
from orchestrator.state.connection import close_client, new_store_client


@dataclass
class _Held:
    client: redis.Redis
    holders: int


_held: dict[tuple[object, ...], _Held] = {}
_held_lock = threading.Lock()


def _key(settings: Settings) -> tuple[object, ...]:
    password = settings.sentinel_password
    secret = password.get_secret_value() if password is not None else None
    return (settings.redis_url, settings.redis_cluster, settings.sentinel_master, secret)


def hold_store_client(settings: Settings) -> redis.Redis:
    """A client of the run store ``settings`` name, shared with the other holders of the same
    Redis; each holder lets it go once with ``release_store_client``."""
    key = _key(settings)
    with _held_lock:
        held = _held.get(key)
        if held is None:
            held = _held[key] = _Held(new_store_client(settings), 0)
        held.holders += 1
        return held.client


def release_store_client(client: redis.Redis) -> None:
    """Let go of a client of ``hold_store_client``; the last holder's release closes its
    connections (a client already closed is left alone)."""
    with _held_lock:
        for key, held in _held.items():
            if held.client is client:
                held.holders -= 1
                if held.holders > 0:
                    return
                del _held[key]
                break
        else:
            return
    close_client(client)


class TaskSender:
    """Sends tasks by name through a Celery app and a broker connection pool of its own.

    Parameters:
        settings: where the broker and the result backend are.
    """

    def __init__(self, settings: Settings) -> None:
        self.app = Celery("agent_orchestrator_client", set_as_current=False)
        self.app.conf.update(celery_config(settings))
        # Not app.pool: that is kombu's pool for this broker URL, shared by the process.
        self._pool = self.app.connection_for_write().Pool(limit=self.app.conf.broker_pool_limit)

    def send(self, name: str, args: tuple[Any, ...], **options: Any) -> None:
        """Publish task ``name`` on a connection of this sender's pool. No result is awaited
        (``ignore_result``): the app would otherwise subscribe to it on the result backend,
        holding a connection there."""
        with self._pool.acquire(block=True) as connection:
            self.app.send_task(
                name, args=args, connection=connection, ignore_result=True, **options
            )

    def close(self) -> None:
        """Close the broker connections, and the result backend's if something asked it for a
        result (``app.AsyncResult``)."""
        self._pool.force_close_all()
        backend = getattr(self.app, "_backend", None)  # made only when first asked for
        if backend is not None:
            consumer = getattr(backend, "result_consumer", None)
            if consumer is not None:
                consumer.stop()
            made = vars(backend).get("client")  # its Redis client, if it made one
            if isinstance(made, redis.Redis):
                close_client(made)
        self.app.close()


class ClientConnections:
    """What one ``Client`` opened: its sender and its hold of the shared Redis client. If
    holding fails, the sender is closed again, so that a client that could not be made holds
    nothing. Once closed, asking for either raises ``ClientClosedError``: used again, they
    would open connections that no close would ever close.

    Parameters:
        settings: where the run store and the broker are.
    """

    def __init__(self, settings: Settings) -> None:
        self._sender = TaskSender(settings)
        try:
            self._redis = hold_store_client(settings)
        except BaseException:
            self._sender.close()
            raise
        self._closed = False
        self._lock = threading.Lock()

    def redis(self) -> redis.Redis:
        """The run store's client, shared with the other open clients of the same Redis."""
        if self._closed:
            raise ClientClosedError("this client is closed: make a new Client")
        return self._redis

    def sender(self) -> TaskSender:
        """This client's own task sender."""
        if self._closed:
            raise ClientClosedError("this client is closed: make a new Client")
        return self._sender

    def close(self) -> None:
        """Close the sender and let go of the Redis client, once however often it is called."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._sender.close()
        release_store_client(self._redis)
