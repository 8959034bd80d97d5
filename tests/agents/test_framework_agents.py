"""A pydantic-ai agent and an OpenAI Agents SDK agent, each an agent function, run as the
mappers of a map-reduce against a local server speaking the OpenAI wire format: each request of
the framework is a model call of the member (its tools and tool results translated both ways),
its usage in the member's output and in the run's ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import AgentSpec, Budget, Client, ModelConfig
from orchestrator.local import LocalRedis
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, scripted, start_workers
from tests.servers.agent_wire import ToolingModelServer


@pytest.mark.parametrize(
    ("function", "tool"),
    [("pydantic_adder", "add"), ("openai_agents_adder", "add_numbers")],
)
def test_a_framework_agent_runs_as_a_mapper_with_its_usage_in_the_ledger(
    function: str, tool: str, private_redis: LocalRedis, tmp_path: Path
) -> None:
    api = ToolingModelServer({"a": 2, "b": 3})
    env = {**FAST_TIMINGS, "ORCHESTRATOR_REDIS_URL": private_redis.url, **api.worker_env()}
    env["ORCHESTRATOR_MODULES"] = "tests.registered.framework_agents"
    (worker,) = start_workers(env, ["frameworks"], tmp_path, 4)
    try:
        client = Client(redis_url=private_redis.url)
        model = ModelConfig(provider="openai", model="m", endpoint="tooling", max_output_tokens=64)
        mapper = AgentSpec(name="adder", agent=function, model=model)
        handle = client.map_reduce(
            "Add", items(3), mapper, scripted("reducer"), 3, budget=Budget(max_tokens=10_000)
        )
        result = handle.result(timeout=90)
        for output in result.map_outputs:
            assert output.outcome == "ok", output.error
            assert output.answer == "done: 5", "the tool ran and the model read its result"
            assert output.turns == 2 and output.tokens.total_tokens == 30
        assert len(api.bodies) == 6
        first, second = api.bodies[0], next(b for b in api.bodies if len(b["messages"]) > 2)
        assert [t["function"]["name"] for t in first["tools"]] == [tool]
        assert first["messages"][0]["role"] == "system"
        assert "add" in first["messages"][0]["content"]
        assert first["max_completion_tokens"] == 64, "the spec's output limit, reserved for"
        call = second["messages"][-2]["tool_calls"][0]
        assert second["messages"][-1] == {
            "role": "tool",
            "tool_call_id": call["id"],
            "content": "5",
        }
        ledger = handle.budget()
        reducer = result.reducer_output
        assert reducer is not None
        assert ledger.spent_tokens == 90 + reducer.tokens.total_tokens
        assert ledger.calls == 7 and ledger.reserved_tokens == 0
    finally:
        worker.stop()
        api.close()
