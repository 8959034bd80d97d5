"""Provider replies beyond the plain ones, against the local wire servers: Anthropic's
thinking blocks going back with their tool use, and successful responses that are not what
the SDK expects."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.providers.test_providers import (
    ANTHROPIC_ANSWER,
    CHAT_ANSWER,
    RESPONSES_ANSWER,
    agent,
    assert_no_secret,
    run,
)
from tests.servers.anthropic_wire import THINKING, thinking_rule
from tests.servers.fake_api import SECRET, FakeAPI, serve_api


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAPI]:
    yield from serve_api(monkeypatch)


THINKING_TOOL_USE: dict[str, Any] = {
    "id": "msg_t1",
    "type": "message",
    "role": "assistant",
    "model": "claude-test",
    "content": [
        THINKING,
        {"type": "tool_use", "id": "toolu_t", "name": "add", "input": {"a": 2, "b": 3}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 50, "output_tokens": 40},
}


def test_anthropic_thinking_blocks_go_back_with_their_tool_use(api: FakeAPI) -> None:
    api.rule = thinking_rule
    api.reply(THINKING_TOOL_USE)
    api.reply(ANTHROPIC_ANSWER)
    spec = agent("anthropic", "claude-test", api).model_copy(update={"thinking": "low"})
    result = run(spec)
    assert result.output.succeeded(), result.output.error
    assert result.output.answer == "It is 5."
    (_, _, second) = api.requests[1]
    assert second["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert second["messages"][-2]["content"][0] == THINKING
    # Kept in the context, so that a continued session sends them back too.
    assert result.context[1].thinking[0].signature == THINKING["signature"]


HTML_ECHO = (
    f"<html><body>upstream says: Authorization: Bearer {SECRET} was accepted</body></html>"
).encode()


@pytest.mark.parametrize(
    ("provider", "model", "broken", "answer"),
    [
        ("openai", "gpt-test", HTML_ECHO, CHAT_ANSWER),
        ("openai", "gpt-test", {**CHAT_ANSWER, "choices": []}, CHAT_ANSWER),
        ("openai_responses", "gpt-test", {**RESPONSES_ANSWER, "output": None}, RESPONSES_ANSWER),
        ("anthropic", "claude-test", {**ANTHROPIC_ANSWER, "content": None}, ANTHROPIC_ANSWER),
    ],
    ids=["chat-not-json", "chat-no-choices", "responses-no-output", "anthropic-no-content"],
)
def test_an_unexpected_200_is_retried_as_a_provider_error(
    api: FakeAPI, provider: str, model: str, broken: Any, answer: dict[str, Any]
) -> None:
    headers = {"content-type": "text/html"} if isinstance(broken, bytes) else {}
    api.reply(broken, **headers)
    api.reply(answer)
    result = run(agent(provider, model, api))
    assert result.output.succeeded(), result.output.error
    assert len(api.requests) == 2


def test_an_unexpected_200_that_lasts_ends_the_agent_with_a_clear_redacted_error(
    api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_PROVIDER_RETRIES", "1")  # the run's Settings() read it
    api.reply(HTML_ECHO, **{"content-type": "text/html"})
    api.reply({**CHAT_ANSWER, "choices": []})
    result = run(agent("openai", "gpt-test", api))
    error = result.output.error or ""
    assert result.output.outcome == "error" and len(api.requests) == 2
    assert error.startswith("RetryableProviderError: openai.chat: unexpected response: ")
    assert "IndexError" in error
    assert_no_secret(result)
