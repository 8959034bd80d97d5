"""A worker rides through a Redis broker restart instead of dying.

kombu's Redis channel, when the connection drops while its BRPOP is pending, fails to close:
``Channel.close`` first drains the pending BRPOP reply, the drain raises the connection error,
and the channel stays open. Celery's consumer then detaches the transport from the connection
(``Connection.collect``) and closes the connection again; this second close restores the
unacknowledged messages (we hold some: late acks) through a transport whose client is now
None, and the ``AttributeError`` it raises is not a connection error, so the worker exits.

The channel here drains what it can and goes on closing, so the second close has nothing left
to do; and a channel that outlived its transport still knows its Redis, so a task that was
running during the outage acknowledges its message once Redis is back, instead of leaving it
to be delivered again after the visibility timeout.
"""

from __future__ import annotations

import logging
from queue import Empty
from typing import Any
from urllib.parse import urlsplit

import redis
from celery import Celery
from kombu.transport import redis as kombu_redis

from orchestrator.connection import OutageRetry

log = logging.getLogger(__name__)


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    """kombu's Redis channel, closing cleanly after a lost connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Where this channel's Redis is, for acks that arrive after the transport was closed;
        # such an ack waits for Redis to be back as run-state commands do.
        self._own_connparams: dict[str, Any] = {
            **self._connparams(),
            "retry": OutageRetry(),
        }
        self._own_pool: redis.ConnectionPool | None = None

    def close(self) -> None:
        if self._in_poll:
            try:
                self._brpop_read()
            except Empty:
                pass
            except self.connection_errors as exc:  # the connection is gone: nothing to drain
                log.debug("pending BRPOP lost with the connection: %r", exc)
        super().close()

    def _get_pool(self, asynchronous: bool = False) -> Any:
        transport = self.connection
        if not asynchronous and (transport is None or transport.client is None):
            # Closed after a connection loss: a late ack (or restore) of a message this
            # channel delivered goes to the same Redis through a pool of its own.
            if self._own_pool is None:
                self._own_pool = redis.ConnectionPool(**self._own_connparams)
            return self._own_pool
        return super()._get_pool(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    """kombu's Redis transport with :class:`Channel`."""

    Channel = Channel


TRANSPORT = f"{__name__}:Transport"


def use_resilient_broker(app: Celery) -> None:
    """Make the worker's broker connections use :class:`Transport` when the broker is a
    plain ``redis://`` URL (``rediss://`` keeps kombu's own transport, which sets up TLS
    from the scheme)."""
    if urlsplit(str(app.conf.broker_url or "")).scheme == "redis":
        app.conf.broker_transport = TRANSPORT
