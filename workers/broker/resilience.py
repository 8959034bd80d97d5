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
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from queue import Empty
from typing import Any
from urllib.parse import urlsplit

import kombu.transport as kombu_transport
import redis
from celery import Celery
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from redis import sentinel

from orchestrator.state.connection import WRITES_REFUSED, OutageRetry, refusal_message

log = logging.getLogger(__name__)


class QoS(kombu_redis.QoS):  # type: ignore[misc]
    """kombu's acknowledgement emulation, going on while Redis refuses writes (it is full).

    Redis refuses every command queued in a transaction then, but never a ZREM or an HDEL on
    its own: an ack (or a reject) that its transaction could not make removes its message from
    the unacknowledged index with the two commands alone. The index's other writers wait for
    room: a delivery Redis would not index still runs (its member's lease in the run state
    stands for it should this worker die), a restore leaves its messages where kombu restores
    them from once their visibility timeout passes, and a visibility scan is left to the next.
    """

    def append(self, message: Any, delivery_tag: str) -> None:
        try:
            super().append(message, delivery_tag)
        except WRITES_REFUSED as refused:
            log.warning("delivery %s not indexed for restore: Redis refuses writes (%s)",
                        delivery_tag, refusal_message(refused))  # fmt: skip
            virtual.QoS.append(self, message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        try:
            super().ack(delivery_tag)
        except WRITES_REFUSED:
            self._remove_alone(delivery_tag)
            virtual.QoS.ack(self, delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue)
        except WRITES_REFUSED as refused:
            if requeue:
                log.warning("message %s left to its visibility timeout: Redis refuses writes"
                            " (%s)", delivery_tag, refusal_message(refused))  # fmt: skip
            else:
                self._remove_alone(delivery_tag)
            virtual.QoS.ack(self, delivery_tag)

    def _remove_alone(self, delivery_tag: str) -> None:
        with self.channel.conn_or_acquire() as client:
            client.zrem(self.unacked_index_key, delivery_tag)
            client.hdel(self.unacked_key, delivery_tag)

    def restore_unacked(self, client: Any = None) -> None:
        try:
            super().restore_unacked(client)
        except WRITES_REFUSED as refused:
            log.warning("unacknowledged messages left to their visibility timeout: Redis refuses"
                        " writes (%s)", refusal_message(refused))  # fmt: skip

    def restore_visible(self, start: int = 0, num: int = 10, interval: int = 10) -> None:
        try:
            super().restore_visible(start, num, interval)
        except WRITES_REFUSED as refused:
            log.warning("visibility scan skipped: Redis refuses writes (%s)",
                        refusal_message(refused))  # fmt: skip


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    """kombu's Redis channel, closing cleanly after a lost connection, with :class:`QoS`."""

    QoS = QoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Where this channel's Redis is, for acks that arrive after the transport was closed;
        # such an ack waits for Redis to be back as run-state commands do.
        self._own_connparams: dict[str, Any] = {
            **self._connparams(),
            "retry": OutageRetry(),
        }
        self._own_client: redis.Redis | None = None

    def close(self) -> None:
        if self._in_poll:
            try:
                self._brpop_read()
            except Empty:
                pass
            except self.connection_errors as exc:  # the connection is gone: nothing to drain
                log.debug("pending BRPOP lost with the connection: %r", exc)
            finally:
                # As kombu's own read does as it ends: kombu's close must not drain again.
                self._in_poll: Any = None
        super().close()
        # kombu's close disconnects the channel's pools (and sentinel managers) before it
        # restores unacknowledged messages, which builds them again: close those too.
        self._disconnect_pools()

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        transport = self.connection
        if client or (transport is not None and transport.client is not None):
            with super().conn_or_acquire(client) as acquired:
                yield acquired
        else:
            # Closed after a connection loss: a late ack (or restore) of a message this
            # channel delivered goes to the same Redis through a client of its own.
            if self._own_client is None:
                self._own_client = self._make_own_client()
            yield self._own_client

    def _make_own_client(self) -> redis.Redis:
        return redis.Redis(connection_pool=_ClosingPool(**self._own_connparams))


class SentinelChannel(Channel, kombu_redis.SentinelChannel):  # type: ignore[misc]
    """kombu's Sentinel channel, closing cleanly after a lost connection (a failover drops
    it just as a restart does); a late ack goes to the master the sentinels name then.

    Its synchronous connections (kombu's QoS writes: acks, rejects, restores; and publishes)
    wait out a failover as run-state commands do (``OutageRetry``): an ack that failed at once
    would leave a finished task's message unacknowledged, and the channel's close would put it
    back in the queue to run again. The cost: kombu turns its batch publishing off for
    connections that retry, and a publish whose reply was lost can be sent twice (as Celery's
    own publish retry can do anyway); a member's second message is dropped by its claim."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # What kombu reads from the transport each time it builds a pool (the transport may
        # be gone when a late ack needs one).
        self._sentinels = [
            (parts.hostname or "127.0.0.1", parts.port or self.connection.default_port)
            for parts in map(urlsplit, self.connection.client.alt)
            if parts.scheme == "sentinel"
        ]

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        params: dict[str, Any] = super()._connparams(asynchronous)
        if not asynchronous:
            params["retry"] = OutageRetry()
        return params

    def _make_own_client(self) -> redis.Redis:
        params = {k: v for k, v in self._own_connparams.items() if k not in ("host", "port")}
        credentials = {k: params[k] for k in ("username", "password") if params.get(k)}
        manager = sentinel.Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
            self._sentinels or [(self._own_connparams["host"], self._own_connparams["port"])],
            min_other_sentinels=getattr(self, "min_other_sentinels", 0),
            sentinel_kwargs=getattr(self, "sentinel_kwargs", None),
            **params,
        )
        own: redis.Redis = manager.master_for(  # type: ignore[no-untyped-call, unused-ignore]
            self.master_name, redis.Redis, _ClosingSentinelPool, **credentials
        )
        return own


class _ClosingPool(redis.ConnectionPool):
    """A pool whose connections close as they are released: a closed channel's late acks are
    few, and nothing would close a connection kept for the next one."""

    def release(self, connection: Any) -> None:
        connection.disconnect()
        super().release(connection)


class _ClosingSentinelPool(sentinel.SentinelConnectionPool):  # type: ignore[misc, unused-ignore]
    """:class:`_ClosingPool` through the sentinels: the connections that asked them for the
    master close too."""

    def release(self, connection: Any) -> None:
        connection.disconnect()
        self.sentinel_manager.close()
        super().release(connection)


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    """kombu's Redis transport with :class:`Channel`."""

    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):  # type: ignore[misc]
    """kombu's Sentinel transport with :class:`SentinelChannel`."""

    Channel = SentinelChannel


TRANSPORT = f"{__name__}:Transport"
SENTINEL_TRANSPORT = f"{__name__}:SentinelTransport"


def use_resilient_broker(app: Celery) -> None:
    """Make the worker's broker connections use :class:`Transport` when the broker is a
    ``redis://`` or ``rediss://`` URL (TLS is set up from the URL's options as kombu's own
    transport does it; without any, the server's certificate is checked against the system's
    CAs), :class:`SentinelTransport` for ``sentinel://``."""
    url = urlsplit(str(app.conf.broker_url or "").split(";", 1)[0])
    scheme = url.scheme
    if scheme in ("redis", "rediss"):
        app.conf.broker_transport = TRANSPORT
    if scheme == "rediss" and not app.conf.broker_use_ssl and "ssl_" not in url.query:
        # A URL that names no TLS options: the certificate is checked against the system's
        # CAs, as redis-py does for the run store (kombu's own transport would not check it).
        app.conf.broker_use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    elif scheme == "sentinel":
        # By alias, not ``broker_transport``: after a failover kombu switches to the next URL
        # of the list and takes the transport from its scheme, which would bring kombu's own
        # channel back for the next failover.
        kombu_transport.TRANSPORT_ALIASES["sentinel"] = SENTINEL_TRANSPORT
        kombu_transport._transport_cache.pop("sentinel", None)
