"""Every member, model call and tool call has a time limit; past it the member ends ``error``
and frees its slot, whatever it was doing, frozen included."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from orchestrator import AgentSpec, Client, ModelConfig, ToolPolicy
from orchestrator.local import LocalRedis
from orchestrator.state.events import AgentStart
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, scripted, start_workers, wait_for


def test_defaults_bound_every_member_model_call_and_tool_call() -> None:
    from workers.providers.http_common import call_timeout_s

    assert AgentSpec(name="a").timeout_s == 900
    assert ToolPolicy().timeout_s == 60
    assert call_timeout_s(ModelConfig(provider="openai", model="m")) == 120


def test_a_member_past_its_time_limit_ends_as_an_error_and_frees_its_slot(client: Client) -> None:
    slow = scripted("slow", latency_ms=600_000).model_copy(update={"timeout_s": 1})
    handle = client.map_reduce("Limits", items(2), slow, scripted("reducer"), max_concurrent=1)
    result = handle.result(timeout=60)
    # The second member ran only because the first one's slot was freed at its limit.
    assert [o.outcome for o in result.map_outputs] == ["error", "error"]
    assert [o.error for o in result.map_outputs] == ["timed out after 1 s"] * 2


def test_a_member_limit_cuts_a_running_tool_call_short(client: Client) -> None:
    script = [{"tool_calls": [{"name": "sync_sleep", "arguments": {"seconds": 600}}]}]
    agent = scripted("sleeper", script=script).model_copy(
        update={"tools": ["sync_sleep"], "timeout_s": 1, "tool_policy": ToolPolicy(timeout_s=900)}
    )
    result = client.run_agent(agent, "go").wait(timeout=60)
    assert result.state == "failed"
    assert result.error == "agent error: timed out after 1 s"


def test_a_frozen_member_past_its_limit_is_ended_by_the_watchdog(
    private_redis: LocalRedis, tmp_path: Path
) -> None:
    env = {"ORCHESTRATOR_REDIS_URL": private_redis.url, **FAST_TIMINGS}
    (frozen,) = start_workers(env, ["frozen"], tmp_path, 1)
    try:
        client = Client(redis_url=private_redis.url)
        agent = scripted("stuck", latency_ms=600_000).model_copy(update={"timeout_s": 2})
        handle = client.run_agent(agent, "go")
        wait_for(
            lambda: any(isinstance(e, AgentStart) for e in handle.events(follow=False)),
            "the member started",
        )
        os.kill(frozen.pid, signal.SIGSTOP)
        # No other worker exists and the holder never wakes: only the watchdog of a worker
        # started now can end the member, once its lease and limit have passed.
        (watcher,) = start_workers(env, ["watcher"], tmp_path, 1)
        try:
            status = handle.wait(timeout=60)
            assert status.state == "failed"
            assert status.error == "agent error: timed out after 2 s"
        finally:
            watcher.stop()
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
        frozen.stop()
