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


def waiting_messages(app: Celery, name: str) -> int:
    """How many messages wait in the app's queue ``name`` (declared as the app declares it,
    which is idempotent), not counting those a consumer took and has not acknowledged."""
    with app.connection_for_write() as connection:
        queue = app.amqp.queues[name].bind(connection.default_channel)
        declared = queue.queue_declare()
    return int(declared.message_count)
