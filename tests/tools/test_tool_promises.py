"""What the tool runner promises on real workers: timeouts that bound every wait and stop the
remote call where it runs, slots that hold until a call really ended, fail-fast that starts
nothing queued, JSON on the wire, and the tool's own exceptions kept as they are."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import pytest
import redis

from orchestrator import Client
from orchestrator.state.events import ToolCallEnd, ToolCallStart
from tests.helpers import wait_for
from tests.tools.test_tools import agent, calls, tool_messages


@pytest.fixture
def state(worker_env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(worker_env["ORCHESTRATOR_REDIS_URL"])


def remote_metas(state: redis.Redis, name: str) -> list[dict[str, Any]]:
    """The stored states of the remote calls of tool ``name`` that a tools worker took."""
    keys = state.scan_iter(f"celery-task-meta-tool:{name}:*")
    return [json.loads(state.get(key) or "{}") for key in keys]


def test_a_timed_out_remote_call_is_stopped_and_its_slot_held_until_it_ended(
    client: Client, state: redis.Redis
) -> None:
    key = uuid4().hex
    slow = ("remote_slow_mark", {"key": key, "seconds": 3})
    spec = agent([calls(slow, slow), {"text": "ok"}], ["remote_slow_mark"])
    spec = spec.model_copy(
        update={
            "tool_policy": spec.tool_policy.model_copy(
                update={"mode": "sequential", "timeout_s": 1.0}
            )
        }
    )
    result = client.run_agent(spec, "go").result(30)
    first, second = tool_messages(result.context)
    assert first.startswith("tool 'remote_slow_mark' timed out after 1 s; it was running on a")
    assert second.startswith("tool 'remote_slow_mark' timed out after 1 s")
    # Every call a tools worker took has ended there (a call not taken yet was stopped by its
    # agent before it started, and never runs): no side effect can come any more.

    def ended() -> list[dict[str, Any]]:
        metas = remote_metas(state, "remote_slow_mark")
        return metas if metas and all(m["status"] != "STARTED" for m in metas) else []

    started = wait_for(ended, "the remote calls ended", 30)
    assert {m["status"] for m in started} <= {"FAILURE", "REVOKED"}
    assert state.get(f"test:mark:{key}") is None, "a timed-out call completed"
    assert state.get(f"test:overlap:{key}") is None, "two calls ran at once past max_concurrency=1"


def test_a_timeout_bounds_the_wait_for_a_shared_slot(client: Client, state: redis.Redis) -> None:
    keys = [uuid4().hex, uuid4().hex]
    turn = calls(*[("limited_blocks", {"key": key}) for key in keys])
    spec = agent([turn, {"text": "ok"}], ["limited_blocks"], timeout_s=0.5)
    try:
        # Neither call returns before the test releases it: the run ends only if the call
        # waiting for the slot timed out too.
        result = client.run_agent(spec, "go").result(20)
    finally:
        for key in keys:
            state.lpush(f"test:release:{key}", "go")
    assert [m[:43] for m in tool_messages(result.context)] == [
        "tool 'limited_blocks' timed out after 0.5 s"
    ] * 2


def test_hung_sync_tools_do_not_starve_other_tools_of_threads(
    client: Client, state: redis.Redis
) -> None:
    key = uuid4().hex
    # More than any thread pool the calls could share (at most 32 threads), fewer than the
    # sync calls a worker lets run past their timeout (MAX_ABANDONED_THREADS).
    hung = 40
    turn = calls(*[("sync_blocks", {"key": key})] * hung)
    script = [turn, calls(("add", {"a": 1, "b": 1})), {"text": "ok"}]
    spec = agent(script, ["sync_blocks", "add"], timeout_s=1.0)
    try:
        result = client.run_agent(spec, "go").result(60)
    finally:
        state.lpush(f"test:release:{key}", *["go"] * hung)
    assert tool_messages(result.context)[-1] == "2"


def test_remote_arguments_cross_the_wire_as_json_of_the_validated_model(client: Client) -> None:
    arguments = {
        "invoice": {"number": "A-1", "cents": 1250},
        "tags": ["urgent", "eu", "urgent"],
        "priority": "high",
    }
    spec = agent([calls(("file_invoice", arguments)), {"text": "ok"}], ["file_invoice"])
    result = client.run_agent(spec, "go").result(30)
    assert tool_messages(result.context) == ["A-1:1250:eu,urgent:HIGH"]


def test_a_tools_own_timeout_error_is_an_error_not_the_runners_timeout(client: Client) -> None:
    spec = agent(
        [calls(("raises_timeout", {"message": "read timed out"})), {"text": "ok"}],
        ["raises_timeout"],
    )
    handle = client.run_agent(spec, "go")
    result = handle.result(30)
    assert tool_messages(result.context) == ["TimeoutError: read timed out"]
    (end,) = [e for e in handle.events(follow=False) if isinstance(e, ToolCallEnd)]
    assert end.status == "error"


def test_fail_fast_starts_no_call_queued_behind_a_failure(
    client: Client, state: redis.Redis
) -> None:
    keys = [uuid4().hex, uuid4().hex]
    turn = calls(
        ("boom", {"message": "broken"}),
        *[("sync_mark", {"key": key, "delay_ms": 0}) for key in keys],
    )
    spec = agent(
        [turn, {"text": "after"}], ["boom", "sync_mark"], max_concurrency=1, join="fail_fast"
    )
    handle = client.run_agent(spec, "go")
    result = handle.result(30)
    assert tool_messages(result.context)[1:] == ["cancelled: boom (call_0_0) failed"] * 2
    # A call that starts says so before it runs its tool: the queued ones never did.
    started = [e.call_id for e in handle.events(follow=False) if isinstance(e, ToolCallStart)]
    assert started == ["call_0_0"]
    assert all(state.get(f"test:mark:{key}") is None for key in keys)


def test_every_kind_of_tool_reads_its_calls_idempotency_key(client: Client) -> None:
    turn = calls(("remote_key", {}), ("async_key", {}))
    handle = client.run_agent(agent([turn, {"text": "ok"}], ["remote_key", "async_key"]), "go")
    result = handle.result(30)
    assert tool_messages(result.context) == [f"{handle.id}/0/call_0_0", f"{handle.id}/0/call_0_1"]
