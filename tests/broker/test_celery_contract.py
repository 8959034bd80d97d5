"""The Celery internals ``workers.coordination.canvas`` relies on, checked against a real private
Redis.

A run's chord is registered with ``set_chord_size`` before any member is published, members that
never run are counted with ``mark_as_done`` and a hand-built ``Context``, and the Redis backend
must ignore a second result for the same task id and ``group_index``. A Celery upgrade that
changes any of these must fail here instead of stalling chords in production. The broker's queue
lists are read directly: no worker consumes them unless a test starts one. Every test has ids of
its own and the Redis is never flushed (the producer pool kombu shares by URL would not declare
the queue bindings again after a flush, and messages would be dropped).
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery

from orchestrator.config.celery_config import QUEUES, celery_config
from orchestrator.config.settings import Settings
from orchestrator.local import LocalRedis
from orchestrator.models import AgentOutput, Outcome
from orchestrator.state.keys import body_task_id, member_task_id
from workers.coordination.canvas import (
    BODY_TASK,
    MEMBER_TASK,
    count_member,
    member_result,
    publish_members,
    register_chord,
)

# kombu's Redis transport keeps a queue's messages of priority p > 0 in "<queue>\x06\x16<p>".
PRIORITY_SEP = "\x06\x16"


@pytest.fixture
def broker(module_redis: LocalRedis) -> redis.Redis:
    return redis.Redis.from_url(module_redis.url)


@pytest.fixture
def app(module_redis: LocalRedis, broker: redis.Redis) -> Iterator[Celery]:
    """An app with the project's Celery configuration on the private Redis."""
    settings = Settings(redis_url=module_redis.url, broker_url=None, result_backend=None)
    celery = Celery("contract", set_as_current=False)
    celery.conf.update(celery_config(settings))
    yield celery
    celery.close()


def queued(client: redis.Redis, queue: str, run_id: str) -> list[dict[str, Any]]:
    """The messages of ``run_id`` (task ids starting with it) waiting in ``queue`` (every
    priority), decoded: task, id, args."""
    keys = sorted(
        key
        for key in (raw.decode() for raw in client.keys(f"{queue}*"))
        if key == queue or key.startswith(queue + PRIORITY_SEP)
    )
    messages = []
    for key in keys:
        if client.type(key) != b"list":
            continue
        for raw in client.lrange(key, 0, -1):
            message = json.loads(raw)
            body = message["body"]
            if message["properties"].get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args, _kwargs, _embed = json.loads(body)
            headers = message["headers"]
            if not headers["id"].startswith(run_id):
                continue
            messages.append({"task": headers["task"], "id": headers["id"], "args": args})
    return messages


def output(index: int, outcome: Outcome) -> AgentOutput:
    return AgentOutput(name=f"mapper_{index}", outcome=outcome)


def new_run() -> str:
    return uuid.uuid4().hex


def assert_one_body(broker: redis.Redis, run_id: str, members: list[dict[str, Any]]) -> None:
    """Exactly one body message, for this run, carrying ``members`` in member order."""
    bodies = queued(broker, "coordinator", run_id)
    assert len(bodies) == 1, bodies
    [body] = bodies
    assert body["task"] == BODY_TASK
    assert body["id"] == body_task_id(run_id)
    assert body["args"] == [members, run_id]
    for queue in QUEUES:
        if queue != "coordinator":
            assert queued(broker, queue, run_id) == [], queue


def test_counted_members_publish_the_body_once(app: Celery, broker: redis.Redis) -> None:
    """set_chord_size(run, n), then n distinct members counted without a message: the body is
    published once, only when the last one is counted, with the results in member order."""
    run_id = new_run()
    outputs = {index: output(index, "skipped") for index in range(3)}
    register_chord(app, run_id, 3)
    for index in (2, 0):  # out of order: the body must still list members by group_index
        count_member(app, run_id, index, outputs[index])
        assert queued(broker, "coordinator", run_id) == []
    count_member(app, run_id, 1, outputs[1])
    assert_one_body(broker, run_id, [member_result(i, outputs[i]) for i in range(3)])


def test_a_member_counted_twice_counts_once(app: Celery, broker: redis.Redis) -> None:
    """A member counted twice (same task id and group_index, another result, as when a
    redelivered member finishes after being counted) is one member: the body waits for every
    distinct member, is published once, and keeps the member's first result."""
    run_id = new_run()
    first = {index: output(index, "skipped") for index in range(3)}
    register_chord(app, run_id, 3)
    count_member(app, run_id, 1, first[1])
    count_member(app, run_id, 1, output(1, "ok"))
    assert queued(broker, "coordinator", run_id) == []
    count_member(app, run_id, 0, first[0])
    # Were the duplicate counted, 3 results would have reached the chord size already.
    assert queued(broker, "coordinator", run_id) == []
    count_member(app, run_id, 2, first[2])
    expected = [member_result(i, first[i]) for i in range(3)]
    assert_one_body(broker, run_id, expected)
    # Late duplicates after the body was published publish nothing more.
    count_member(app, run_id, 2, output(2, "ok"))
    count_member(app, run_id, 0, output(0, "error"))
    assert_one_body(broker, run_id, expected)


def test_a_member_run_by_a_worker_after_being_counted_counts_once(
    app: Celery, broker: redis.Redis
) -> None:
    """The real path: a member published by ``publish_members`` and run by a real (embedded)
    worker is counted by the chord from its message alone; when the member was already counted
    without a message, its execution does not count it again."""
    from celery.contrib.testing.worker import start_worker

    ran: list[int] = []
    lock = threading.Lock()
    both_ran = threading.Event()

    @app.task(name=MEMBER_TASK)
    def run_member(run_id: str, index: int) -> dict[str, Any]:
        with lock:
            ran.append(index)
            if len(ran) == 2:
                both_ran.set()
        return member_result(index, output(index, "ok"))

    run_id = new_run()
    register_chord(app, run_id, 3)
    skipped = output(0, "skipped")
    count_member(app, run_id, 0, skipped)
    publish_members(app, run_id, [0, 1])
    with start_worker(app, pool="solo", perform_ping_check=False, queues=["agents"]):
        assert both_ran.wait(60), ran
    # A solo worker runs one task at a time and stops after finishing the one it runs: both
    # members were executed and reported, their chord counting included.
    assert sorted(ran) == [0, 1]
    assert app.AsyncResult(member_task_id(run_id, 1)).result == member_result(1, output(1, "ok"))
    assert queued(broker, "agents", run_id) == []
    # Were member 0 counted twice, the chord would be complete (0, 0, 1) and the body out.
    assert queued(broker, "coordinator", run_id) == []
    last = output(2, "cancelled")
    count_member(app, run_id, 2, last)
    assert_one_body(
        broker,
        run_id,
        [member_result(0, skipped), member_result(1, output(1, "ok")), member_result(2, last)],
    )


@pytest.mark.parametrize("queue", QUEUES)
def test_a_task_lands_in_its_queue_only(app: Celery, broker: redis.Redis, queue: str) -> None:
    """Each queue has its own exchange and routing key: with no worker consuming, a task sent
    to one queue (by its route and by an explicit queue) is in that queue and in no other."""
    routed = {"coordinator": "tasks.coordinator.x", "agents": "tasks.agents.x"}
    routed |= {"tools": "tasks.tools.x", "learner": "tasks.learner.x"}
    run_id = new_run()
    app.send_task(routed[queue], task_id=f"{run_id}-by-route", add_to_parent=False)
    app.send_task("contract.x", queue=queue, task_id=f"{run_id}-by-queue", add_to_parent=False)
    for name in QUEUES:
        ids = sorted(message["id"] for message in queued(broker, name, run_id))
        expected = [f"{run_id}-by-queue", f"{run_id}-by-route"] if name == queue else []
        assert ids == expected, name


def test_kombu_redis_channel_keeps_what_the_resilient_broker_overrides() -> None:
    """``workers/broker/resilience.py`` builds on these private parts of kombu's Redis channel;
    a kombu that renames them must fail here, not in a Redis outage."""
    from kombu.transport import redis as kombu_redis

    channel = kombu_redis.Channel
    for name in ("_brpop_read", "_connparams", "_disconnect_pools", "close", "conn_or_acquire"):
        assert callable(getattr(channel, name, None)), name
    assert "_in_poll" in vars(channel) or hasattr(channel, "_in_poll")
    assert kombu_redis.Transport.Channel is channel
    assert issubclass(kombu_redis.SentinelChannel, channel)
    assert kombu_redis.SentinelTransport.Channel is kombu_redis.SentinelChannel


def test_kombu_redis_qos_keeps_what_the_resilient_broker_builds_on() -> None:
    """The private parts of kombu's Redis ``QoS`` and transport registry that
    ``workers/broker/resilience.py`` uses: its ``QoS`` falls back to the in-memory bookkeeping
    of kombu's virtual ``QoS`` when Redis refuses a write, writes kombu's unacknowledged index
    itself, and the Sentinel transport is registered through kombu's alias table and cache."""
    import kombu.transport as kombu_transport
    from kombu.transport import redis as kombu_redis
    from kombu.transport import virtual

    qos = kombu_redis.QoS
    assert issubclass(qos, virtual.QoS) and kombu_redis.Channel.QoS is qos
    for name in ("append", "ack", "reject", "restore_unacked", "restore_visible"):
        assert callable(getattr(qos, name, None)), name
    for name in ("append", "ack"):
        assert callable(getattr(virtual.QoS, name, None)), name
    for name in ("unacked_key", "unacked_index_key"):
        assert name in vars(qos), name
    assert callable(getattr(kombu_redis.Channel, "conn_or_acquire", None))
    assert isinstance(kombu_transport.TRANSPORT_ALIASES, dict)
    assert isinstance(kombu_transport._transport_cache, dict)
