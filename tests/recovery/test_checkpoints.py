"""A SIGKILLed agent resumes from its last completed turn on another worker."""

from __future__ import annotations

from pathlib import Path

import redis

from orchestrator import AgentSpec, Client, ModelConfig
from orchestrator.local import LocalRedis
from orchestrator.state.events import ModelTurn
from orchestrator.state.keys import RunKeys
from tests.conftest import FAST_TIMINGS
from tests.helpers import start_workers, wait_for


def test_a_redelivered_agent_resumes_without_repeating_model_calls(tmp_path: Path) -> None:
    server = LocalRedis()
    env = {"ORCHESTRATOR_REDIS_URL": server.url, **FAST_TIMINGS}
    (victim,) = start_workers(env, ["victim"], tmp_path, concurrency=2)
    survivor = None
    try:
        client = Client(redis_url=server.url)
        turn = {"tool_calls": [{"name": "echo", "arguments": {"text": "x"}}]}
        spec = AgentSpec(
            name="long",
            model=ModelConfig(
                provider="scripted",
                options={"latency_ms": 800, "script": [turn, turn, {"text": "end"}]},
            ),
            tools=["echo"],
        )
        handle = client.run_agent(spec, "go")
        state = redis.Redis.from_url(server.url)
        checkpoints = RunKeys(handle.id).checkpoints
        wait_for(lambda: state.hexists(checkpoints, "0"), "a checkpoint was written", 20, 0.02)
        victim.kill()  # during the second model call
        (survivor,) = start_workers(env, ["survivor"], tmp_path, concurrency=2)

        result = handle.result(timeout=60)
        assert result.output.answer == "end" and result.output.turns == 3
        turns = [e.turn for e in handle.events(follow=False) if isinstance(e, ModelTurn)]
        assert sorted(turns) == [1, 2, 3], "the first model call was made once"
        roles = [m.role for m in result.context]
        assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
        assert not state.exists(RunKeys(handle.id).checkpoints)
    finally:
        victim.kill()
        if survivor is not None:
            survivor.stop()
        server.stop()
