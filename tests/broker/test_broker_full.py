"""The broker's acknowledgement bookkeeping while Redis refuses writes (it is full): an ack goes
through, a delivery still reaches its consumer, and a channel closes without raising, leaving
what it could not restore to kombu's visibility timeout."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Queue

from orchestrator.local import LocalRedis
from tests.redis_faults.test_redis_full import fill
from workers.broker.resilience import TRANSPORT

QUEUE = Queue("full-test", Exchange("full-test"), "full-test")


@pytest.fixture
def broker() -> Iterator[tuple[redis.Redis, Any]]:
    server = LocalRedis()
    with Connection(server.url, transport=TRANSPORT) as connection:
        yield redis.Redis.from_url(server.url), connection
    server.stop()


def publish(connection: Any, body: str) -> None:
    connection.Producer().publish({"body": body}, routing_key=QUEUE.routing_key, declare=[QUEUE])


def test_a_message_taken_before_redis_filled_is_acknowledged_while_it_is_full(
    broker: tuple[redis.Redis, Any],
) -> None:
    client, connection = broker
    publish(connection, "one")
    channel = connection.channel()
    message = channel.basic_get(QUEUE.name, no_ack=False)
    assert message is not None and client.hlen("unacked") == 1
    fill(client)
    message.ack()
    assert client.hlen("unacked") == 0 and client.zcard("unacked_index") == 0
    channel.close()


def test_a_message_delivered_while_redis_is_full_reaches_its_consumer(
    broker: tuple[redis.Redis, Any],
) -> None:
    client, connection = broker
    publish(connection, "two")
    channel = connection.channel()
    fill(client)
    message = channel.basic_get(QUEUE.name, no_ack=False)
    assert message is not None and message.decode() == {"body": "two"}
    message.ack()
    channel.close()


def test_a_channel_closing_while_redis_is_full_leaves_its_messages_to_be_restored(
    broker: tuple[redis.Redis, Any],
) -> None:
    client, connection = broker
    publish(connection, "three")
    channel = connection.channel()
    assert channel.basic_get(QUEUE.name, no_ack=False) is not None
    fill(client)
    channel.close()  # restoring it is refused: it stays where a visibility scan restores it
    assert client.hlen("unacked") == 1
    client.config_set("maxmemory", 0)
    # Once Redis has room, the scan of messages unacknowledged for longer than the visibility
    # timeout (none here) puts it back on its queue.
    url = f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
    with Connection(url, transport=TRANSPORT, transport_options={"visibility_timeout": 0}) as scan:
        scanning = scan.channel()
        scanning.qos.restore_visible(num=10, interval=1)
        message = scanning.basic_get(QUEUE.name, no_ack=True)
        assert message is not None and message.decode() == {"body": "three"}
        scanning.close()
