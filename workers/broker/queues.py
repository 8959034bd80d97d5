"""The broker's queues, declared again when the broker may have forgotten them."""

from __future__ import annotations

import logging

from celery import Celery

log = logging.getLogger(__name__)


def declare_queues(app: Celery) -> None:
    """Declare every queue of the app with its exchange and binding. A Redis broker keeps its
    bindings as keys: after a flush, or a restart that kept nothing, messages sent to an
    exchange with no binding are dropped, and kombu, which declared them once per connection,
    does not know to declare them again."""
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in app.amqp.queues.values():
            queue.bind(channel).declare()
    log.warning("the broker had forgotten this worker: its queues are declared again")


PROBE_TIMEOUT_S = 2.0
"""How long asking the broker for a queue's length may take: the caller is a watchdog pass,
which must not wait for a broker that is down (it asks again at the next lease)."""


def waiting_messages(app: Celery, name: str) -> int:
    """How many messages wait in the app's queue ``name`` (declared as the app declares it,
    which is idempotent), not counting those a consumer took and has not acknowledged.

    Over a connection of the app's pool, tried once: a broker that does not answer within
    ``PROBE_TIMEOUT_S`` raises ``OperationalError`` (or the pool's ``LimitExceeded``)."""
    with app.pool.acquire(block=True, timeout=PROBE_TIMEOUT_S) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=PROBE_TIMEOUT_S)
        channel = connection.channel()
        try:
            declared = app.amqp.queues[name].bind(channel).queue_declare()
        finally:
            channel.close()
    return int(declared.message_count)
