"""Tool fan-out on real workers: order, limits, fail-fast, timeouts, validation, remote tools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis

from orchestrator import AgentSpec, Client, InvalidRunError, ModelConfig, ToolPolicy
from orchestrator.local import LocalRedis
from orchestrator.state.events import AgentStart, ModelTurn, ToolCallEnd, ToolCallStart
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, start_workers, wait_for


def calls(*pairs: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments} for name, arguments in pairs]}


def agent(script: list[dict[str, Any]], tools: list[str], **policy: Any) -> AgentSpec:
    return AgentSpec(
        name="toolsmith",
        model=ModelConfig(provider="scripted", options={"script": script}),
        tools=tools,
        tool_policy=ToolPolicy(**policy),
    )


def tool_messages(context: list[Any]) -> list[str]:
    return [m.content for m in context if m.role == "tool"]


def remote_outcomes(state: redis.Redis) -> list[Any]:
    """The remote tool calls that are over, from Celery's result backend: "REVOKED",
    ("FAILURE", the exception's type) or ("SUCCESS", the content)."""
    outcomes: list[Any] = []
    for key in state.scan_iter("celery-task-meta-*"):
        meta = json.loads(state.get(key) or "{}")
        if meta.get("status") == "REVOKED":
            outcomes.append("REVOKED")
        elif meta.get("status") == "FAILURE":
            outcomes.append(("FAILURE", (meta.get("result") or {}).get("exc_type")))
        elif meta.get("status") == "SUCCESS" and "content" in (meta.get("result") or {}):
            outcomes.append(("SUCCESS", meta["result"]["content"]))
    return outcomes


@pytest.fixture
def state(worker_env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(worker_env["ORCHESTRATOR_REDIS_URL"])


def test_results_come_back_in_call_order_whatever_order_they_finish(client: Client) -> None:
    turn = calls(
        ("echo", {"text": "slow", "delay_ms": 400}),
        ("echo", {"text": "fast", "delay_ms": 0}),
        ("echo", {"text": "middle", "delay_ms": 200}),
    )
    handle = client.run_agent(agent([turn, {"text": "done"}], ["echo"]), "go")
    result = handle.result(30)
    assert tool_messages(result.context) == ["slow", "fast", "middle"]
    ends = [e for e in handle.events(follow=False) if isinstance(e, ToolCallEnd)]
    assert [e.call_id for e in ends] == ["call_0_1", "call_0_2", "call_0_0"]  # finish order
    assert result.output.tool_calls == 3 and result.output.tools_used == ["echo"]
    # Side by side, not one by one: every call had started before the first one ended.
    order = [
        type(e) for e in handle.events(follow=False) if isinstance(e, ToolCallStart | ToolCallEnd)
    ]
    assert order == [ToolCallStart] * 3 + [ToolCallEnd] * 3


def test_sequential_policy_runs_one_call_at_a_time(client: Client, state: redis.Redis) -> None:
    turn = calls(*[("tracked", {"key": "sequential", "delay_ms": 80})] * 4)
    client.run_agent(agent([turn, {"text": "ok"}], ["tracked"], mode="sequential"), "go").result(30)
    assert int(state.get("test:sequential:max") or 0) == 1


def test_policy_max_concurrency_bounds_one_turn(client: Client, state: redis.Redis) -> None:
    turn = calls(*[("tracked", {"key": "policy2", "delay_ms": 150})] * 6)
    spec = agent([turn, {"text": "ok"}], ["tracked"], max_concurrency=2)
    client.run_agent(spec, "go").result(30)
    assert int(state.get("test:policy2:max") or 0) == 2


def test_tool_max_concurrency_holds_across_worker_processes(
    client: Client, state: redis.Redis
) -> None:
    turn = calls(*[("scarce", {"key": "scarce", "delay_ms": 150})] * 4)
    mapper = agent([turn, {"text": "ok"}], ["scarce"]).model_copy(update={"name": "m"})
    handle = client.map_reduce("Scarce", items(6), mapper, AgentSpec(name="r"), 6)
    result = handle.result(60)
    assert result.all_succeeded()
    assert len({e.worker for e in handle.events(follow=False) if isinstance(e, AgentStart)}) > 1
    assert int(state.get("test:scarce:max") or 0) == 2  # 24 calls from 6 agents, never 3


def test_fail_fast_cancels_the_rest_for_real(client: Client, state: redis.Redis) -> None:
    turn = calls(
        ("boom", {"message": "broken"}),
        ("mark", {"key": "running-async", "delay_ms": 500}),
        ("mark", {"key": "queued", "delay_ms": 10}),
    )
    spec = agent([turn, {"text": "after"}], ["boom", "mark"], max_concurrency=2, join="fail_fast")
    handle = client.run_agent(spec, "go")
    result = handle.result(30)
    contents = tool_messages(result.context)
    assert contents[0] == "RuntimeError: broken"
    assert contents[1].startswith("cancelled: boom") and contents[2].startswith("cancelled: boom")
    # The run has ended and every call that started has ended, the marks cancelled: none can
    # set its mark any more, so a mark now would be a side effect that got through.
    events = list(handle.events(follow=False))
    started = {e.call_id for e in events if isinstance(e, ToolCallStart)}
    ended = {e.call_id: e.status for e in events if isinstance(e, ToolCallEnd)}
    assert set(ended) == started and ended.pop("call_0_0") == "error"
    assert "call_0_1" in ended and set(ended.values()) == {"cancelled"}
    assert state.get("test:mark:running-async") is None
    assert state.get("test:mark:queued") is None


def test_join_all_keeps_every_result_and_errors_for_the_model(client: Client) -> None:
    turn = calls(("boom", {"message": "broken"}), ("add", {"a": 2, "b": 3}))
    result = client.run_agent(agent([turn, {"text": "ok"}], ["boom", "add"]), "go").result(30)
    assert tool_messages(result.context) == ["RuntimeError: broken", "5"]


def test_a_tool_past_its_own_timeout_returns_a_timeout_error_at_once(client: Client) -> None:
    turn = calls(("hangs", {"seconds": 60}), ("add", {"a": 1, "b": 1}))
    result = client.run_agent(agent([turn, {"text": "ok"}], ["hangs", "add"]), "go").result(30)
    assert tool_messages(result.context) == ["tool 'hangs' timed out after 0.3 s", "2"]


def test_a_running_sync_tool_is_not_waited_for_past_the_policy_timeout(
    client: Client, state: redis.Redis
) -> None:
    key = uuid4().hex
    turn = calls(("sync_blocks", {"key": key}))
    spec = agent([turn, {"text": "moved on"}], ["sync_blocks"], timeout_s=0.3)
    try:
        # The tool's thread returns only once released below: the run can end only if the
        # agent stopped waiting for it.
        result = client.run_agent(spec, "go").result(30)
    finally:
        state.lpush(f"test:release:{key}", "go")
    assert tool_messages(result.context) == [
        "tool 'sync_blocks' timed out after 0.3 s; it keeps running in its thread and may still "
        "complete (its result unread)"
    ]
    assert result.output.answer == "moved on"


def test_invalid_arguments_become_a_tool_error_the_model_reads(client: Client) -> None:
    turn = calls(("add", {"a": "many", "b": 1}), ("add", {"a": 1}))
    result = client.run_agent(agent([turn, {"text": "ok"}], ["add"]), "go").result(30)
    first, second = tool_messages(result.context)
    assert first.startswith("invalid arguments for add: a: Input should be a valid integer")
    assert second == "invalid arguments for add: b: Field required"
    assert result.output.succeeded()


def test_a_tool_not_listed_for_the_agent_is_refused(client: Client) -> None:
    turn = calls(("add", {"a": 1, "b": 2}))
    result = client.run_agent(agent([turn, {"text": "ok"}], ["echo"]), "go").result(30)
    assert tool_messages(result.context) == ["tool 'add' is not available to this agent"]


def test_an_unknown_tool_is_refused_at_submit(client: Client) -> None:
    with pytest.raises(InvalidRunError, match="unknown tool 'nope'"):
        client.run_agent(agent([], ["echo", "nope"]), "go")


def test_workers_publish_the_tools_they_serve(client: Client) -> None:
    served = {info.name: info for info in client.tools()}
    assert {"echo", "add", "scarce", "where"} <= set(served)
    assert served["add"].parameters["required"] == ["a", "b"]
    assert served["scarce"].max_concurrency == 2 and served["where"].remote


def test_a_provider_pool_holds_across_three_workers(client: Client) -> None:
    mapper = AgentSpec(
        name="m",
        model=ModelConfig(provider="scripted", model="pooled", options={"latency_ms": 150}),
    )
    handle = client.map_reduce("Pool", items(8), mapper, AgentSpec(name="r"), 8)
    handle.result(60)
    turns = [e for e in handle.events(follow=False) if isinstance(e, ModelTurn)]
    # Each call's (started_at, ended_at) is taken inside its pool slot, so these intervals
    # lie within the slots' holds: their overlap is the pool's, not scheduling noise.
    mapper_calls = [(e.started_at, e.ended_at) for e in turns if e.index is not None]
    assert len(mapper_calls) == 8
    points: list[tuple[float, int]] = []
    for start, end in mapper_calls:
        assert start is not None and end is not None
        points += [(start.timestamp(), 1), (end.timestamp(), -1)]
    points.sort()
    running = peak = 0
    for _, step in points:
        running += step
        peak = max(peak, running)
    assert peak == 2  # the pool scripted:pooled allows two calls at once


def test_remote_tools_run_on_the_tools_queue_workers(tmp_path: Path) -> None:
    server = LocalRedis()
    env = {"ORCHESTRATOR_REDIS_URL": server.url, **FAST_TIMINGS}
    from orchestrator.local import LocalWorker, wait_for_workers

    agents = LocalWorker("agents", env, queues=["coordinator", "agents"], concurrency=4)
    tools = LocalWorker("tools", env, queues=["tools"], concurrency=4)
    try:
        wait_for_workers(redis.Redis.from_url(server.url), [agents.hostname, tools.hostname])
        client = Client(redis_url=server.url)
        handle = client.run_agent(agent([calls(("where", {})), {"text": "ok"}], ["where"]), "go")
        result = handle.result(30)
        (ran_at,) = tool_messages(result.context)
        # In a child process of the tools worker (a sync remote tool is killable).
        assert int(ran_at.rsplit(":", 1)[1]) == tools.pid
        starts = [e for e in handle.events(follow=False) if isinstance(e, AgentStart)]
        assert starts[0].worker is not None and starts[0].worker.endswith(f":{agents.pid}")
    finally:
        agents.stop()
        tools.stop()
        server.stop()


def test_a_remote_call_on_a_full_single_slot_worker_fails_fast_instead_of_hanging(
    tmp_path: Path,
) -> None:
    server = LocalRedis()
    env = {"ORCHESTRATOR_REDIS_URL": server.url, **FAST_TIMINGS}
    # Misconfigured: one slot serves agents and tools, and the agent occupies it.
    (worker,) = start_workers(env, ["lonely"], tmp_path, concurrency=1)
    try:
        client = Client(redis_url=server.url)
        spec = agent([calls(("where", {})), {"text": "finished anyway"}], ["where"])
        result = client.run_agent(spec, "go").result(30)
        (message,) = tool_messages(result.context)
        assert "was not picked up within 2 s" in message and "'tools' queue" in message
        assert result.output.answer == "finished anyway"
    finally:
        worker.stop()
        server.stop()


def test_run_agent_results_carry_the_record_of_every_call(client: Client) -> None:
    turn = calls(("add", {"a": 1, "b": 2}), ("echo", {"text": "x", "delay_ms": 0}))
    result = client.run_agent(agent([turn, {"text": "ok"}], ["add", "echo"]), "go").result(30)
    assert result.record is not None
    assert [(c.kind, c.name, c.status) for c in result.record.calls] == [
        ("model", "scripted-1", "ok"),
        ("tool", "add", "ok"),
        ("tool", "echo", "ok"),
        ("model", "scripted-1", "ok"),
    ]
    assert all(c.ended_at is not None and c.ended_at >= c.started_at for c in result.record.calls)


def test_fail_fast_revokes_a_remote_call_still_waiting_for_a_tools_worker(
    tmp_path: Path,
) -> None:
    server = LocalRedis()
    env = {"ORCHESTRATOR_REDIS_URL": server.url, **FAST_TIMINGS}
    from orchestrator.local import LocalWorker, wait_for_workers

    agents = LocalWorker("agents", env, queues=["coordinator", "agents"], concurrency=4)
    tools = LocalWorker("tools", env, queues=["tools"], concurrency=1)
    try:
        state = redis.Redis.from_url(server.url)
        wait_for_workers(state, [agents.hostname, tools.hostname])
        client = Client(redis_url=server.url)
        turn = calls(
            ("remote_sleep", {"seconds": 1.0}),  # takes the tools worker's only slot
            ("remote_mark", {"key": "revoked"}),  # waits behind it in the tools queue
            ("fails_after", {"seconds": 0.3}),
        )
        names = ["remote_sleep", "remote_mark", "fails_after"]
        spec = agent([turn, {"text": "after"}], names, join="fail_fast")
        result = client.run_agent(spec, "go").result(30)
        contents = tool_messages(result.context)
        assert contents[2] == "RuntimeError: failed on purpose"
        assert contents[0].startswith("cancelled:") and contents[1].startswith("cancelled:")
        # Wait until both remote calls are over on the tools worker (its result backend says
        # so); the queued one must have been discarded, not run: Celery drops it as revoked,
        # or, when the revoke reaches the tools worker after it took the message (a busy
        # machine), the call's stop in Redis ends it before its body runs.
        outcomes = wait_for(
            lambda: found if len(found := remote_outcomes(state)) >= 2 else None,
            "the remote calls ended",
            30,
        )
        assert ("SUCCESS", "revoked") not in outcomes
        assert state.get("test:mark:revoked") is None
        stopped = ("FAILURE", "RemoteToolStopped")
        assert all(outcome in ("REVOKED", stopped) for outcome in outcomes), outcomes
        # Either way its message was revoked: the tools worker holds its id among the revoked.
        inspect = client._celery.control.inspect([tools.hostname], timeout=2)
        wait_for(
            lambda: any(
                task.startswith("tool:remote_mark:")
                for task in ((inspect.revoked() or {}).get(tools.hostname) or [])
            ),
            "the queued call revoked on its tools worker",
            30,
        )
        # The running one was stopped on the tools worker, not left to finish.
        assert stopped in outcomes
    finally:
        agents.stop()
        tools.stop()
        server.stop()
