"""Provider adapters against a local server speaking each API's documented wire format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator import AgentSpec, ModelConfig, tool
from tests.helpers import providers
from tests.servers.fake_api import SECRET, FakeAPI, serve_api
from workers.agent.loop import AgentRun, run_agent
from workers.tools.registry import ToolRegistry
from workers.tools.runner import ToolRunner


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


TOOLS = ToolRunner(ToolRegistry({"add": add}))


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAPI]:
    yield from serve_api(monkeypatch)


def agent(provider: str, model: str, api: FakeAPI) -> AgentSpec:
    return AgentSpec(
        name="calc",
        instructions="You add numbers.",
        model=ModelConfig(provider=provider, model=model, endpoint=f"test-{provider}"),
        tools=["add"],
    )


def run(spec: AgentSpec) -> AgentRun:
    return run_agent(spec, "What is 2 + 3?", run_id="r1", tools=TOOLS, provider_for=providers())


def assert_no_secret(result: AgentRun) -> None:
    stored = result.output.model_dump_json() + result.record.model_dump_json()
    stored += "".join(m.model_dump_json() for m in result.context)
    assert SECRET not in stored


def assert_model_calls_recorded(result: AgentRun, surface: str) -> None:
    model_calls = [c for c in result.record.calls if c.kind == "model"]
    assert {c.surface for c in model_calls} == {surface}
    assert all(len(c.request_digest or "") == 64 for c in model_calls)
    assert model_calls[0].request_digest != model_calls[1].request_digest


CHAT_TOOL_CALL = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-test",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'},
                    }
                ],
            },
        }
    ],
    "usage": {
        "prompt_tokens": 50,
        "completion_tokens": 10,
        "total_tokens": 60,
        "prompt_tokens_details": {"cached_tokens": 20},
    },
}
CHAT_ANSWER = {
    "id": "chatcmpl-2",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-test",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "The sum is 5."},
        }
    ],
    "usage": {"prompt_tokens": 70, "completion_tokens": 5, "total_tokens": 75},
}


def test_openai_chat_round_trips_a_tool_call_with_usage_and_cost(api: FakeAPI) -> None:
    api.reply(CHAT_TOOL_CALL)
    api.reply(CHAT_ANSWER)
    result = run(agent("openai", "gpt-test", api))
    assert result.output.answer == "The sum is 5."
    (path, headers, first), (_, _, second) = api.requests
    assert path == "/v1/chat/completions"
    assert headers["authorization"] == f"Bearer {SECRET}"
    assert first["messages"][0] == {"role": "system", "content": "You add numbers."}
    assert first["tools"][0]["function"]["name"] == "add"
    assert first["tools"][0]["function"]["parameters"]["required"] == ["a", "b"]
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_a", "content": "5"}
    assert second["messages"][-2]["tool_calls"][0]["id"] == "call_a"
    usage = result.output.tokens
    assert (usage.input_tokens, usage.output_tokens, usage.cached_tokens) == (120, 15, 20)
    # 100 plain input at $1/M, 20 cached at $0.5/M, 15 output at $2/M.
    assert usage.cost_usd == pytest.approx((100 * 1.0 + 20 * 0.5 + 15 * 2.0) / 1e6)
    assert_model_calls_recorded(result, "openai.chat")
    assert_no_secret(result)


RESPONSES_TOOL_CALL = {
    "id": "resp_1",
    "object": "response",
    "created_at": 0,
    "status": "completed",
    "model": "gpt-test",
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "output": [
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_b",
            "name": "add",
            "arguments": '{"a":2,"b":3}',
            "status": "completed",
        }
    ],
    "usage": {
        "input_tokens": 40,
        "output_tokens": 8,
        "total_tokens": 48,
        "input_tokens_details": {"cached_tokens": 16},
        "output_tokens_details": {"reasoning_tokens": 0},
    },
}
RESPONSES_ANSWER = {
    "id": "resp_2",
    "object": "response",
    "created_at": 0,
    "status": "completed",
    "model": "gpt-test",
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "output": [
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "5", "annotations": []}],
        }
    ],
    "usage": {
        "input_tokens": 60,
        "output_tokens": 2,
        "total_tokens": 62,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    },
}


def test_openai_responses_round_trips_a_tool_call(api: FakeAPI) -> None:
    api.reply(RESPONSES_TOOL_CALL)
    api.reply(RESPONSES_ANSWER)
    result = run(agent("openai_responses", "gpt-test", api))
    assert result.output.answer == "5"
    (path, _, first), (_, _, second) = api.requests
    assert path == "/v1/responses"
    assert first["instructions"] == "You add numbers."
    assert first["tools"][0] == {
        "type": "function",
        "name": "add",
        "description": "Add two integers.",
        "parameters": add.info.parameters,
    }
    assert second["input"][-2] == {
        "type": "function_call",
        "call_id": "call_b",
        "name": "add",
        "arguments": json.dumps({"a": 2, "b": 3}),
    }
    assert second["input"][-1] == {
        "type": "function_call_output",
        "call_id": "call_b",
        "output": "5",
    }
    usage = result.output.tokens
    assert (usage.input_tokens, usage.output_tokens, usage.cached_tokens) == (100, 10, 16)
    assert_model_calls_recorded(result, "openai.responses")
    assert_no_secret(result)


ANTHROPIC_TOOL_USE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-test",
    "content": [
        {"type": "text", "text": "Let me add."},
        {"type": "tool_use", "id": "toolu_1", "name": "add", "input": {"a": 2, "b": 3}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 50,
        "output_tokens": 10,
        "cache_creation_input_tokens": 30,
        "cache_read_input_tokens": 40,
    },
}
ANTHROPIC_ANSWER = {
    "id": "msg_2",
    "type": "message",
    "role": "assistant",
    "model": "claude-test",
    "content": [{"type": "text", "text": "It is 5."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 20,
        "output_tokens": 4,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 70,
    },
}


def test_anthropic_messages_round_trips_a_tool_use_with_cache_usage(api: FakeAPI) -> None:
    api.reply(ANTHROPIC_TOOL_USE)
    api.reply(ANTHROPIC_ANSWER)
    result = run(agent("anthropic", "claude-test", api))
    assert result.output.answer == "It is 5."
    (path, headers, first), (_, _, second) = api.requests
    assert path == "/v1/messages"
    # The SDK sends the key as x-api-key or as a bearer token, depending on its version.
    assert SECRET in (headers.get("x-api-key", ""), headers.get("authorization", "")[7:])
    assert first["system"] == "You add numbers." and first["max_tokens"] == 4096
    assert first["tools"][0]["input_schema"]["required"] == ["a", "b"]
    assert second["messages"][-2]["content"][1] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "add",
        "input": {"a": 2, "b": 3},
    }
    assert second["messages"][-1] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "5"}],
    }
    usage = result.output.tokens
    assert (usage.input_tokens, usage.output_tokens) == (70, 14)
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (30, 110)
    expected = (70 * 3.0 + 110 * 0.3 + 30 * 3.75 + 14 * 15.0) / 1e6
    assert usage.cost_usd == pytest.approx(expected)
    assert_model_calls_recorded(result, "anthropic.messages")
    assert_no_secret(result)


@pytest.mark.parametrize(
    ("provider", "model", "answer"),
    [("openai", "gpt-test", CHAT_ANSWER), ("anthropic", "claude-test", ANTHROPIC_ANSWER)],
)
def test_a_429_is_retried_after_its_retry_after(
    api: FakeAPI, provider: str, model: str, answer: dict[str, Any]
) -> None:
    limited = {"error": {"type": "rate_limit_error", "message": "slow down"}}
    api.reply(limited, status=429, **{"retry-after": "0"})
    api.reply(limited, status=503)
    api.reply(answer)
    result = run(agent(provider, model, api))
    assert result.output.succeeded()
    assert len(api.requests) == 3


def test_a_bad_request_is_not_retried_and_ends_the_agent_with_an_error(api: FakeAPI) -> None:
    api.reply(
        {"error": {"message": "bad tool schema", "type": "invalid_request_error"}}, status=400
    )
    result = run(agent("openai", "gpt-test", api))
    assert result.output.outcome == "error" and "bad tool schema" in (result.output.error or "")
    assert len(api.requests) == 1


def test_a_missing_key_names_the_variable_to_set(
    api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    result = run(agent("openai", "gpt-test", api))
    assert "set OPENAI_API_KEY in the worker's environment" in (result.output.error or "")
    assert api.requests == []
