"""What the agent loop promises on real workers: a resumed agent does not repeat the tool
calls that completed, the last allowed turn runs no tools, and a tool result is cut so that
the next call fits."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import pytest
import redis

from orchestrator import AgentRunResult, AgentSpec, Budget, Client, ModelConfig, ToolPolicy
from orchestrator.errors import RunFailedError
from orchestrator.local import LocalRedis
from orchestrator.state.events import ToolCallStart
from tests.conftest import FAST_TIMINGS
from tests.helpers import start_workers, wait_for
from tests.tools.test_tools import agent, calls, tool_messages


def test_a_resumed_agent_does_not_repeat_the_tool_calls_that_completed(tmp_path: Path) -> None:
    server = LocalRedis()
    env = {"ORCHESTRATOR_REDIS_URL": server.url, **FAST_TIMINGS}
    (victim,) = start_workers(env, ["victim"], tmp_path, concurrency=2)
    survivor = None
    try:
        state = redis.Redis.from_url(server.url)
        client = Client(redis_url=server.url)
        account, report = uuid4().hex, uuid4().hex
        charge = ("charge", {"account": account, "cents": 500})
        turn = calls(charge, ("slow_report", {"key": report}))
        spec = agent([turn, {"text": "done"}], ["charge", "slow_report"], mode="sequential")
        handle = client.run_agent(spec, "go")
        # Once the report started, the charge has completed.
        wait_for(lambda: state.exists(f"test:started:{report}"), "the report started", 20, 0.02)
        victim.kill()
        victim.process.wait()
        state.set(f"test:release:{report}", "1")
        (survivor,) = start_workers(env, ["survivor"], tmp_path, concurrency=2)
        result = handle.result(60)
        assert int(state.get(f"test:charges:{account}") or 0) == 500, "charged twice"
        # The call in flight when the worker died ran again: at-least-once, and said so.
        assert int(state.get(f"test:started:{report}") or 0) == 2
        assert tool_messages(result.context) == ["charged 500", "report ready"]
        assert result.output.tool_calls == 2 and result.output.answer == "done"
        (key,) = state.lrange(f"test:charge-keys:{account}", 0, -1)
        assert key.decode() == f"{handle.id}/0/call_0_0"
    finally:
        victim.kill()
        if survivor is not None:
            survivor.stop()
        server.stop()


@pytest.fixture
def state(worker_env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(worker_env["ORCHESTRATOR_REDIS_URL"])


def test_the_last_allowed_turn_runs_no_tools(client: Client, state: redis.Redis) -> None:
    key = uuid4().hex
    spec = agent([calls(("sync_mark", {"key": key, "delay_ms": 0}))], ["sync_mark"])
    handle = client.run_agent(spec.model_copy(update={"max_turns": 1}), "go")
    with pytest.raises(RunFailedError) as failed:
        handle.result(30)
    result = failed.value.result
    assert isinstance(result, AgentRunResult)
    assert result.output.outcome == "error"
    error = "max_turns (1) reached: the last turn's 1 tool call(s) were not run"
    assert result.output.error == error
    assert not [e for e in handle.events(follow=False) if isinstance(e, ToolCallStart)]
    assert result.output.tool_calls == 0 and state.get(f"test:mark:{key}") is None
    (answer,) = tool_messages(result.context)  # the context stays one that can be continued
    assert answer.startswith("not run: this was the last turn max_turns allows")


def test_a_tool_result_over_its_share_of_the_window_is_cut_so_the_next_call_fits(
    client: Client,
) -> None:
    model = ModelConfig(
        provider="scripted",
        context_window=4000,
        max_output_tokens=256,
        options={"script": [calls(("big", {"size": 400_000})), {"text": "read it"}]},
    )
    spec = AgentSpec(name="reader", model=model, tools=["big"], tool_policy=ToolPolicy())
    # The whole result (about 100,000 tokens) would not fit this budget.
    result = client.run_agent(spec, "go", budget=Budget(max_tokens=20_000)).result(30)
    assert result.output.succeeded(), result.output.error
    (content,) = tool_messages(result.context)
    assert len(content.encode()) <= 1000  # a quarter of the window, in bytes
    kept = content.index("\n[cut: ")
    assert content[kept:] == f"\n[cut: {400_000 - kept} of 400000 characters removed]"
