"""Every member travels as a task of its own (``tasks.agents.run_member``, id ``{run}-m{i}``),
the first window of a wide run included, unless the run's own ended members show that they are
short: only then do members share messages (batches) or go on in a finished member's thread
(lanes). What Flower lists is what the workers announce in Celery's task events, so the tests
watch those events; one test reads the broker's messages themselves."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis
from celery import Celery

from orchestrator import Client
from orchestrator.config.celery_config import celery_config
from orchestrator.config.settings import Settings
from orchestrator.local import LocalRedis
from orchestrator.models.requests import MapReduceRequest
from orchestrator.state.store import RunStore
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, scripted, start_workers, wait_for
from workers.coordination.canvas import BATCH_TASK, MEMBER_TASK
from workers.coordination.publishing import publish
from workers.identity import node_name

WIDE = 40
"""A first window this wide was published in batches of 16 before members travelled alone."""


class TaskEvents:
    """The task events the workers send, as Flower receives them, from a thread of this
    process."""

    def __init__(self, url: str) -> None:
        self.app = Celery("task-events", set_as_current=False)
        self.app.conf.update(celery_config(Settings(redis_url=url)))
        self.events: list[dict[str, Any]] = []
        self._receiver: Any = None
        threading.Thread(target=self._capture, daemon=True).start()

    def _capture(self) -> None:
        with self.app.connection_for_read() as connection:
            self._receiver = self.app.events.Receiver(
                connection, handlers={"*": self.events.append}
            )
            # ``wakeup``: the workers answer with a heartbeat, a sign that events reach us.
            self._receiver.capture(limit=None, timeout=None, wakeup=True)

    def wait_until_listening(self) -> None:
        wait_for(
            lambda: any(e["type"] == "worker-heartbeat" for e in list(self.events)),
            "a worker's heartbeat reached the event receiver",
        )

    def received(self, name: str) -> list[dict[str, Any]]:
        """The ``task-received`` events of tasks named ``name`` (what Flower lists)."""
        return [e for e in list(self.events) if e["type"] == "task-received" and e["name"] == name]

    def succeeded(self) -> set[str]:
        return {e["uuid"] for e in list(self.events) if e["type"] == "task-succeeded"}

    def stop(self) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True


@pytest.fixture
def workers_with_events(private_redis: LocalRedis, tmp_path: Path) -> Iterator[TaskEvents]:
    """Two workers whose lane threshold is 50 ms, and the task events they send."""
    env = {"ORCHESTRATOR_REDIS_URL": private_redis.url, **FAST_TIMINGS}
    env["ORCHESTRATOR_LANE_S"] = "0.05"
    running = start_workers(env, ["ev1", "ev2"], tmp_path, 32)
    events = TaskEvents(private_redis.url)
    try:
        events.wait_until_listening()
        yield events
    finally:
        events.stop()
        for worker in running:
            worker.stop()


def test_a_wide_run_of_slow_members_shows_every_member_as_its_own_task(
    private_redis: LocalRedis, workers_with_events: TaskEvents
) -> None:
    client = Client(redis_url=private_redis.url)
    mapper = scripted("slow", latency_ms=200)  # longer than the lane threshold of 50 ms
    handle = client.map_reduce("Slow", items(WIDE), mapper, scripted("reducer"), WIDE)
    result = handle.result(timeout=120)
    assert [o.outcome for o in result.map_outputs] == ["ok"] * WIDE
    ids = {f"{handle.id}-m{i}" for i in range(WIDE)}
    wait_for(lambda: ids <= workers_with_events.succeeded(), "every member's task succeeded")
    members = [e for e in workers_with_events.received(MEMBER_TASK) if e["uuid"] in ids]
    assert sorted(e["uuid"] for e in members) == sorted(ids), "each member a task of its own"
    assert workers_with_events.received(BATCH_TASK) == [], "no member shared a message"
    # Their task-sent events, published together as one event message, reached the receiver.
    sent = {e["uuid"] for e in list(workers_with_events.events) if e["type"] == "task-sent"}
    assert ids <= sent


def test_short_members_go_on_without_messages_of_their_own_once_the_run_has_evidence(
    private_redis: LocalRedis, workers_with_events: TaskEvents
) -> None:
    count = 400
    client = Client(redis_url=private_redis.url)
    handle = client.map_reduce("Short", items(count), scripted("fast"), scripted("r"), WIDE)
    result = handle.result(timeout=120)
    assert [o.outcome for o in result.map_outputs] == ["ok"] * count
    wait_for(lambda: f"{handle.id}-m0" in workers_with_events.succeeded(), "member 0 announced")
    received = workers_with_events.received(MEMBER_TASK) + workers_with_events.received(BATCH_TASK)
    mine = [e for e in received if e["uuid"].startswith(handle.id)]
    first_window = {f"{handle.id}-m{i}" for i in range(WIDE)}
    # Before any member ended, nothing said they were short: the first window travels alone.
    assert first_window <= {e["uuid"] for e in mine if e["name"] == MEMBER_TASK}
    # Then the members' own durations did: most of the rest shared a message or a thread.
    assert len(mine) < count, f"{len(mine)} messages for {count} short members"


@pytest.mark.parametrize("short", [False, True], ids=["no-evidence", "known-short"])
def test_admitted_members_share_messages_only_in_a_run_known_to_be_short(
    module_redis: LocalRedis, short: bool
) -> None:
    """The broker's own messages: a window of ``WIDE`` members published by ``publish``."""
    settings = Settings(redis_url=module_redis.url)
    store = RunStore(redis.Redis.from_url(module_redis.url), settings)
    app = Celery("publisher", set_as_current=False)
    app.conf.update(celery_config(settings))
    run_id = uuid4().hex
    request = MapReduceRequest(
        task="t", mapper=scripted("m"), reducer=scripted("r"), item_count=WIDE,
        max_concurrent=WIDE,
    )  # fmt: skip
    store.create_run(run_id, request, items(WIDE))
    admitted = store.start(run_id, node_name()).admitted
    assert admitted == list(range(WIDE))
    store.client.delete("agents")
    publish(app, store, run_id, [str(i) for i in admitted], short=short)
    headers = [json.loads(raw)["headers"] for raw in store.client.lrange("agents", 0, -1)]
    names = {h["task"] for h in headers}
    if short:
        assert names == {BATCH_TASK} and len(headers) == -(-WIDE // settings.members_per_message)
    else:
        assert names == {MEMBER_TASK}
        assert sorted(h["id"] for h in headers) == sorted(f"{run_id}-m{i}" for i in range(WIDE))


def test_a_window_s_task_sent_events_leave_as_one_event_message(
    private_redis: LocalRedis, workers_with_events: TaskEvents
) -> None:
    """Read off the event exchange itself (Redis pub/sub): the first window's ``task-sent``
    events travel together in ``task.multi`` messages, none on its own."""
    state = redis.Redis.from_url(private_redis.url)
    channel = state.pubsub(ignore_subscribe_messages=True)
    channel.psubscribe("*celeryev/task.*")
    wait_for(lambda: channel.connection is not None, "subscribed")
    client = Client(redis_url=private_redis.url)
    handle = client.map_reduce("Sent", items(WIDE), scripted("m"), scripted("r"), WIDE)
    assert handle.result(timeout=120).all_succeeded()
    alone: list[str] = []
    together: list[list[str]] = []
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 1.0:  # until a second passes without a message
        message = channel.get_message(timeout=0.1)
        if message is None:
            continue
        quiet_since = time.monotonic()
        envelope = json.loads(message["data"])
        body = json.loads(base64.b64decode(envelope["body"]))
        events = body if isinstance(body, list) else [body]
        sent = [e["uuid"] for e in events if e.get("type") == "task-sent"]
        if isinstance(body, list):
            together.append(sent)
        else:
            alone.extend(sent)
    ids = {f"{handle.id}-m{i}" for i in range(WIDE)}
    assert any(set(batch) == ids for batch in together), "the window's went as one message"
    assert not ids & set(alone), "no member's task-sent event went on its own"
    channel.close()
