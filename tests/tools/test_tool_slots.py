"""A tool call's shared slot against a real Redis, in one process: it is held as long as the
call may still run, and giving it back never costs a call its result."""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from uuid import uuid4

import redis

from orchestrator import ToolPolicy, tool
from orchestrator.local import LocalRedis
from orchestrator.models import ToolCall
from orchestrator.state.keys import semaphore_key
from tests.helpers import wait_for
from workers.execution.cancellation import CancelToken
from workers.limits import SharedLimit
from workers.tools.calls import RemoteCall, SlotRef, ToolEvents, ToolResult
from workers.tools.registry import ToolRegistry
from workers.tools.runner import ToolRunner

LEASE_S = 1.0  # renewed every third of it: a busy machine may delay a renewal or two
HANG = threading.Event()  # set by each test that leaves threads hanging, once it is done
STORES: list[LocalRedis] = []  # the Redis the next ``stops_the_store`` call stops


@tool(max_concurrency=1, timeout_s=0.2)
def hangs() -> str:
    """Block its thread until the test lets it go."""
    HANG.wait(60)
    return "late"


@tool(max_concurrency=1)
async def stops_the_store() -> str:
    """Complete, after making the run store unreachable."""
    STORES.pop().stop()
    return "it completed"


@tool(remote=True, max_concurrency=1, timeout_s=0.2)
def remote_limited() -> str:
    """Stands for a remote tool (its calls go to ``UnstoppableRemote``)."""
    return "never here"


class UnstoppableRemote(RemoteCall):
    """A remote call that started, whose stop meets a Redis outage, and that ends when the
    test says so."""

    def __init__(self) -> None:
        self.ended = threading.Event()

    async def outcome(self) -> str:
        await asyncio.sleep(3600)
        return ""

    def stop(self) -> bool:
        raise redis.ConnectionError("Redis is down")

    def wait_ended(self) -> None:
        self.ended.wait(60)


def run_one(runner: ToolRunner, name: str) -> ToolResult:
    call = ToolCall(id=f"c-{uuid4().hex[:8]}", name=name, arguments={})
    (result,) = runner.run([call], [name], ToolPolicy(), CancelToken(), ToolEvents())
    return result


def redis_ms(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return seconds * 1000 + micros / 1000


def holders(client: redis.Redis, limit: SharedLimit) -> list[Any]:
    return client.zrange(semaphore_key(limit.name), 0, -1, withscores=True)


def test_a_timed_out_sync_call_keeps_its_slot_while_its_thread_runs(
    redis_server: LocalRedis,
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    limit = SharedLimit(client, f"tool:hangs:{uuid4().hex}", 1, None, LEASE_S)
    runner = ToolRunner(ToolRegistry({"hangs": hangs}), lambda _: limit)
    HANG.clear()
    try:
        assert run_one(runner, "hangs").status == "timeout"
        ((_, expiry),) = holders(client, limit)
        # Past the lease the slot had when the call gave up waiting: unrenewed, it would be free.
        wait_for(lambda: redis_ms(client) > expiry + 50, "the lease ran out")
        assert limit.try_acquire(uuid4().hex) > 0, "a second call ran beside the hung thread"
    finally:
        HANG.set()
    wait_for(lambda: not holders(client, limit), "the slot was released when the thread ended")


def test_past_the_cap_of_abandoned_threads_a_sync_call_is_refused_not_threaded() -> None:
    runner = ToolRunner(ToolRegistry({"hangs": hangs}), max_abandoned_threads=3)
    HANG.clear()
    try:
        calls = [ToolCall(id=f"a{i}", name="hangs", arguments={}) for i in range(3)]
        policy = ToolPolicy()
        first = runner.run(calls, ["hangs"], policy, CancelToken(), ToolEvents())
        assert [r.status for r in first] == ["timeout"] * 3
        threads = threading.active_count()
        more = [ToolCall(id=f"b{i}", name="hangs", arguments={}) for i in range(5)]
        refused = runner.run(more, ["hangs"], policy, CancelToken(), ToolEvents())
        assert threading.active_count() <= threads
    finally:
        HANG.set()
    assert [r.status for r in refused] == ["error"] * 5
    assert all("still run past their timeout (at most 3)" in r.content for r in refused)


def test_a_failed_stop_of_a_remote_call_still_reports_its_timeout(
    redis_server: LocalRedis,
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    limit = SharedLimit(client, f"tool:remote:{uuid4().hex}", 1, None, LEASE_S)
    remote = UnstoppableRemote()

    def start(
        name: str, arguments: dict[str, Any], key: str, limit_s: float, slot: SlotRef | None
    ) -> RemoteCall:
        return remote

    runner = ToolRunner(ToolRegistry({"remote_limited": remote_limited}), lambda _: limit, start)
    try:
        result = run_one(runner, "remote_limited")
    finally:
        remote.ended.set()
    assert result.status == "timeout"
    assert result.content.endswith("it may still run on a tools worker and may still complete")


def test_a_failed_stop_of_a_remote_call_keeps_its_slot_until_the_call_ended(
    redis_server: LocalRedis,
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    limit = SharedLimit(client, f"tool:remote:{uuid4().hex}", 1, None, LEASE_S)
    remote = UnstoppableRemote()

    def start(
        name: str, arguments: dict[str, Any], key: str, limit_s: float, slot: SlotRef | None
    ) -> RemoteCall:
        return remote

    runner = ToolRunner(ToolRegistry({"remote_limited": remote_limited}), lambda _: limit, start)
    try:
        run_one(runner, "remote_limited")
        assert len(holders(client, limit)) == 1, "the slot was given up while the call may run"
    finally:
        remote.ended.set()
    wait_for(lambda: not holders(client, limit), "the slot was released once the call ended")


def test_a_completed_call_keeps_its_result_when_releasing_its_slot_fails() -> None:
    server = LocalRedis()
    STORES.append(server)
    try:
        client = redis.Redis.from_url(server.url)
        limit = SharedLimit(client, "tool:stops_the_store", 1, None, LEASE_S)
        runner = ToolRunner(ToolRegistry({"stops_the_store": stops_the_store}), lambda _: limit)
        result = run_one(runner, "stops_the_store")
    finally:
        server.stop()
    assert (result.status, result.content) == ("ok", "it completed")
