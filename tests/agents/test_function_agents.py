"""Agent functions (``@agent``) run as members under the guarantees of the built-in loop: their
model calls are reserved and settled in the run's budget, counted in their output and events,
their tool calls go through the tool runner; an unknown name is refused at submit; an
exception ends the member ``error`` (redacted), a cancel ``cancelled`` (the call in flight
aborted); a redelivered member resumes from its last checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from orchestrator import AgentSpec, Budget, Client, ModelConfig
from orchestrator.errors import InvalidRunError, RunFailedError
from orchestrator.local import LocalRedis
from orchestrator.models import AgentOutput
from orchestrator.state.events import ModelTurn
from orchestrator.state.keys import RunKeys
from orchestrator.tokens import estimate_tokens
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, scripted, start_workers, wait_for
from tests.servers.model_server import SlowModelServer

KEY = "sk-test-agent-function-key-0123456789"


def function(name: str, agent: str, max_output_tokens: int = 4096, **options: object) -> AgentSpec:
    """An agent spec naming agent function ``agent``, its calls on the scripted model."""
    model = ModelConfig(provider="scripted", options=options, max_output_tokens=max_output_tokens)
    return AgentSpec(name=name, agent=agent, model=model)


def output_of(handle_result: object) -> AgentOutput:
    output = getattr(handle_result, "output", None)
    assert isinstance(output, AgentOutput)
    return output


def test_an_agent_function_runs_as_a_mapper_with_its_calls_in_the_ledger(client: Client) -> None:
    mapper = function("mapper", "two_calls")
    handle = client.map_reduce(
        "Summarise", items(3), mapper, scripted("reducer"), 3, budget=Budget(max_tokens=100_000)
    )
    result = handle.result(timeout=60)
    assert [o.outcome for o in result.map_outputs] == ["ok"] * 3
    for index, output in enumerate(result.map_outputs):
        answer = json.loads(output.answer)
        assert answer["item"] == f"item-{index}" and answer["member"] == str(index)
        assert output.data == answer, "a JSON value is also the output's data"
        assert answer["final"].startswith("[scripted scripted-1] refine: ")
        assert output.turns == 2
    turns = [e for e in handle.events(follow=False) if isinstance(e, ModelTurn)]
    assert len([t for t in turns if t.index is not None]) == 6, "each call is a turn event"
    ledger = handle.budget()
    spent = sum(o.tokens.total_tokens for o in result.map_outputs)
    assert result.reducer_output is not None
    assert ledger.spent_tokens == spent + result.reducer_output.tokens.total_tokens
    assert ledger.calls == 7 and ledger.reserved_tokens == 0


def test_an_agent_function_is_bounded_by_max_tokens_exactly(client: Client) -> None:
    limit = 300
    spec = function("greedy", "until_denied", max_output_tokens=16)
    handle = client.run_agent(spec, "spend", budget=Budget(max_tokens=limit))
    with pytest.raises(RunFailedError) as failed:
        handle.result(timeout=60)
    output = output_of(failed.value.result)
    assert output.outcome == "error" and output.error is not None
    assert "max_tokens (300 tokens)" in output.error, "the budget's refusal ended it"
    ledger = handle.budget()
    assert ledger.spent_tokens == output.tokens.total_tokens, "every call counted, once"
    assert ledger.calls == output.turns >= 5
    assert ledger.spent_tokens <= limit and ledger.reserved_tokens == 0
    # The call it was refused would have reserved its exact input plus its output limit.
    refused = estimate_tokens(f"spend #{output.turns}") + 16
    assert ledger.spent_tokens + refused > limit


def test_an_agent_functions_value_is_checked_against_the_output_schema(client: Client) -> None:
    schema = {"type": "object", "required": ["label"]}
    spec = function("typed", "two_calls").model_copy(update={"output_schema": schema})
    with pytest.raises(RunFailedError) as failed:
        client.run_agent(spec, "go").result(timeout=60)
    output = output_of(failed.value.result)
    assert output.outcome == "error" and output.data is None
    assert output.error == "output_schema: at $: 'label' is a required property"


def test_an_unknown_agent_function_is_refused_at_submit(client: Client) -> None:
    assert "two_calls" in client.agents()
    with pytest.raises(InvalidRunError, match=r"unknown agent function 'nope'.*two_calls"):
        client.run_agent(function("x", "nope"), "hi")


def test_an_import_path_is_no_agent_name(client: Client) -> None:
    with pytest.raises(InvalidRunError, match="agent"):
        client.run_agent({"name": "x", "agent": "os.system"}, "hi")


def test_an_agent_function_calls_a_registered_tool(client: Client) -> None:
    spec = function("adder", "adds").model_copy(update={"tools": ["add"]})
    output = client.run_agent(spec, "go").result(timeout=60).output
    assert output.outcome == "ok", output.error
    assert output.answer.endswith("the sum is 5")
    assert output.tool_calls == 1 and output.tools_used == ["add"] and output.turns == 1


def test_an_agent_function_may_call_only_its_spec_tools(client: Client) -> None:
    with pytest.raises(RunFailedError) as failed:
        client.run_agent(function("adder", "adds"), "go").result(timeout=60)
    output = output_of(failed.value.result)
    assert output.outcome == "error"
    assert "ToolCallError: tool 'add' is not one of the agent's tools (none)" in str(output.error)


def test_an_exception_ends_the_member_error_with_the_key_redacted(
    private_redis: LocalRedis, tmp_path: Path
) -> None:
    env = {**FAST_TIMINGS, "ORCHESTRATOR_REDIS_URL": private_redis.url, "OPENAI_API_KEY": KEY}
    (worker,) = start_workers(env, ["leaks"], tmp_path, 2)
    try:
        client = Client(redis_url=private_redis.url)
        handle = client.run_agent(function("leaky", "leaks"), "go")
        with pytest.raises(RunFailedError) as failed:
            handle.result(timeout=60)
        output = output_of(failed.value.result)
        assert output.outcome == "error"
        assert output.error == "RuntimeError: could not call with key [redacted]"
        events = "".join(e.model_dump_json() for e in handle.events(follow=False))
        assert KEY not in events and KEY not in str(failed.value)
    finally:
        worker.stop()


def test_a_cancel_aborts_an_agent_functions_call_and_ends_it_cancelled(
    private_redis: LocalRedis, tmp_path: Path
) -> None:
    api = SlowModelServer(delay_s=600)
    env = {**FAST_TIMINGS, "ORCHESTRATOR_REDIS_URL": private_redis.url, **api.worker_env()}
    env["ORCHESTRATOR_HEARTBEAT_S"] = "120"  # the cancel's announcement must reach it
    env["ORCHESTRATOR_LEASE_S"] = "600"
    (worker,) = start_workers(env, ["cancels"], tmp_path, 2)
    try:
        client = Client(redis_url=private_redis.url)
        spec = api.agent("stubborn").model_copy(update={"agent": "ignores_cancel"})
        handle = client.run_agent(spec, "wait")
        wait_for(lambda: api.received == ["wait"], "the call is in flight", 30, 0.01)
        assert handle.cancel() is True
        assert handle.wait(timeout=30).state == "cancelled"
        wait_for(lambda: api.abandoned == ["wait"], "the call was aborted", 10, 0.01)
        output = next(handle.outputs())
        assert output.outcome == "cancelled", "catching the stop does not make it ok"
        assert output.answer == ""
    finally:
        worker.stop()
        api.close()


def test_a_redelivered_agent_function_resumes_from_its_checkpoint(
    private_redis: LocalRedis, tmp_path: Path
) -> None:
    api = SlowModelServer(delay_s=0.6)
    env = {**FAST_TIMINGS, "ORCHESTRATOR_REDIS_URL": private_redis.url, **api.worker_env()}
    (victim,) = start_workers(env, ["victim"], tmp_path, 2)
    survivor = None
    try:
        client = Client(redis_url=private_redis.url)
        spec = api.agent("stepper").model_copy(update={"agent": "steps"})
        handle = client.run_agent(spec, "job")
        state = redis.Redis.from_url(private_redis.url)
        wait_for(lambda: "job step 2" in api.received, "two steps were saved", 30, 0.01)
        victim.kill()  # during the third call
        (survivor,) = start_workers(env, ["survivor"], tmp_path, 2)
        result = handle.result(timeout=60)
        assert result.output.outcome == "ok"
        assert result.output.answer.count("answer to job step") == 3
        assert api.answered.count("job step 0") == 1 and api.answered.count("job step 1") == 1
        assert state.get("test:steps:job:starts") == b"2", "it ran twice, the second resumed"
        assert result.output.turns == 3, "the resumed output counts the first execution's calls"
        assert not state.exists(RunKeys(handle.id).checkpoints)
    finally:
        victim.kill()
        if survivor is not None:
            survivor.stop()
        api.close()
