"""The cache servers driven by the official SDK clients, and by the workers' own provider
adapters. Token counts are worked out by hand from ``tests/servers/cache_wire.py``'s estimate:
ceil(UTF-8 bytes / 4) of canonical JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from benchmarks.prompt_cache_sim import AnthropicUsage, OpenAIUsage
from orchestrator import AgentSpec, ModelConfig, tool
from tests.helpers import environment, providers
from tests.servers.cache_server_base import KEY
from tests.servers.cache_servers import (
    AnthropicCacheServer,
    CacheServer,
    FakeClock,
    OpenAIChatCacheServer,
    OpenAIResponsesCacheServer,
    combined_env,
)
from workers.agent.loop import run_agent
from workers.tools.registry import ToolRegistry
from workers.tools.runner import ToolRunner

if TYPE_CHECKING:
    import anthropic
    import openai

# {"text":"x...x","type":"text"}: 9 + 4975 + 16 = 5000 bytes, 1250 tokens.
SYSTEM_TEXT = "x" * 4975
SYSTEM_TOKENS = 1250
# "hi" is read as {"text":"hi","type":"text"}: 27 bytes, 7 tokens.
HI: Any = [{"role": "user", "content": "hi"}]
HI_TOKENS = 7


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


TOOLS = ToolRunner(ToolRegistry({"add": add}))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def messages_api(clock: FakeClock) -> Iterator[AnthropicCacheServer]:
    server = AnthropicCacheServer(tool_turns=1, tool_input={"q": "cats"}, clock=clock)
    yield server
    server.close()


def claude(server: CacheServer) -> anthropic.Anthropic:
    # The SDKs are imported where a test uses them, not at collection: every process of the
    # suite collects this module, and the Anthropic SDK alone takes seconds of CPU to import.
    import anthropic

    return anthropic.Anthropic(base_url=server.base_url, api_key="k", max_retries=0)


def cached_system(ttl: str | None = None) -> list[Any]:
    marker = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return [{"type": "text", "text": SYSTEM_TEXT, "cache_control": marker}]


def anthropic_usage(usage: Any) -> tuple[int, int, int, int, int]:
    creation = usage.cache_creation
    return (
        usage.input_tokens,
        usage.cache_creation_input_tokens,
        usage.cache_read_input_tokens,
        creation.ephemeral_5m_input_tokens,
        creation.ephemeral_1h_input_tokens,
    )


def test_anthropic_second_request_reads_the_system_block(
    messages_api: AnthropicCacheServer,
) -> None:
    client = claude(messages_api)
    for ttl, written in ((None, (SYSTEM_TOKENS, 0)), ("1h", (0, SYSTEM_TOKENS))):
        model = f"claude-{ttl}"
        first = client.messages.create(
            model=model, max_tokens=10, system=cached_system(ttl), messages=HI
        )
        assert anthropic_usage(first.usage) == (HI_TOKENS, SYSTEM_TOKENS, 0, *written)
        second = client.messages.create(
            model=model, max_tokens=10, system=cached_system(ttl), messages=HI
        )
        assert anthropic_usage(second.usage) == (HI_TOKENS, 0, SYSTEM_TOKENS, 0, 0)
    assert messages_api.received[0]["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert messages_api.usages[1]["cache_read_input_tokens"] == SYSTEM_TOKENS
    read = messages_api.sim_usages[1]
    assert isinstance(read, AnthropicUsage) and read.read_at == 0


def test_anthropic_entries_expire_and_reads_renew_them(
    messages_api: AnthropicCacheServer, clock: FakeClock
) -> None:
    client = claude(messages_api)

    def read() -> int:
        reply = client.messages.create(
            model="claude", max_tokens=10, system=cached_system(), messages=HI
        )
        return reply.usage.cache_read_input_tokens or 0

    assert read() == 0  # written at 0 s, until 300 s
    clock.advance(299)
    assert read() == SYSTEM_TOKENS  # renewed until 599 s
    clock.advance(300)
    assert read() == 0  # expired exactly at 599 s: written again


def test_anthropic_entries_are_readable_when_their_request_ends(clock: FakeClock) -> None:
    # The fake clock stands still while the server takes delay_s: the second request starts
    # before the first one's answer, as a concurrent one would.
    server = AnthropicCacheServer(delay_s=0.25, clock=clock)
    client = claude(server)
    try:
        reads = []
        for wait in (0, 0.125, 0.125):  # exact in binary: 0.25 is reached exactly
            clock.advance(wait)
            reply = client.messages.create(
                model="claude", max_tokens=10, system=cached_system(), messages=HI
            )
            reads.append(reply.usage.cache_read_input_tokens)
        assert reads == [0, 0, SYSTEM_TOKENS]
    finally:
        server.close()


def test_anthropic_automatic_mode_marks_the_last_block(
    messages_api: AnthropicCacheServer,
) -> None:
    client = claude(messages_api)
    system: Any = [{"type": "text", "text": SYSTEM_TEXT}]
    marker: Any = {"type": "ephemeral"}
    for read in (0, SYSTEM_TOKENS + HI_TOKENS):
        reply = client.messages.create(
            model="claude", max_tokens=10, system=system, messages=HI, cache_control=marker
        )
        assert reply.usage.cache_read_input_tokens == read
        assert reply.usage.input_tokens == 0  # nothing after the breakpoint on "hi"
    assert messages_api.received[0]["cache_control"] == {"type": "ephemeral"}


def test_anthropic_refuses_a_fifth_breakpoint(messages_api: AnthropicCacheServer) -> None:
    import anthropic

    client = claude(messages_api)
    marker: Any = {"type": "ephemeral"}
    tools: Any = [
        {"name": f"t{i}", "input_schema": {"type": "object"}, "cache_control": marker}
        for i in range(5)
    ]
    with pytest.raises(anthropic.BadRequestError, match="maximum of 4 blocks") as refused:
        client.messages.create(model="claude", max_tokens=10, tools=tools, messages=HI)
    assert refused.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "A maximum of 4 blocks with cache_control may be provided. Found 5.",
        },
    }
    # Four explicit markers and automatic mode's marker on the last message make five.
    with pytest.raises(anthropic.BadRequestError, match="Found 5"):
        client.messages.create(
            model="claude", max_tokens=10, tools=tools[:4], messages=HI, cache_control=marker
        )
    # A 1-hour breakpoint after a 5-minute one is refused as well.
    system: Any = [*cached_system("5m"), *cached_system("1h")]
    with pytest.raises(anthropic.BadRequestError, match="shorter ttl"):
        client.messages.create(model="claude", max_tokens=10, system=system, messages=HI)
    assert len(messages_api.received) == 3 and messages_api.usages == []


def test_anthropic_sdk_parses_a_tool_call_then_the_final_text(
    messages_api: AnthropicCacheServer,
) -> None:
    client = claude(messages_api)
    first = client.messages.create(model="claude", max_tokens=10, messages=HI)
    call = first.content[0]
    assert first.stop_reason == "tool_use" and call.type == "tool_use"
    assert (call.id, call.name, call.input) == ("toolu_00", "lookup", {"q": "cats"})
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "purr"}
    turns: Any = [*HI, first.to_param(), {"role": "user", "content": [result]}]
    final = client.messages.create(model="claude", max_tokens=10, messages=turns)
    assert final.stop_reason == "end_turn"
    assert [(b.type, getattr(b, "text", None)) for b in final.content] == [("text", "done")]
    assert final.usage.output_tokens == 8  # [{"text":"done","type":"text"}]: 31 bytes


# Chat: {"content":"y...y","role":"system"} (8030 bytes), "\n", {"content":"hi","role":"user"}
# (30 bytes): 8061 bytes, cut in 15 blocks of 512 bytes (128 tokens) and one of 381 (96
# tokens): 2016 tokens. A repeat shares all of them: 1024 + 7 * 128 = 1920 cached.
# Responses: {"instructions":"y...y"} (8019 bytes), "\n", the same user message: 8050 bytes,
# 15 * 128 + 93 = 2013 tokens, 1920 cached.
LONG = "y" * 8000
CHAT: Any = [{"role": "system", "content": LONG}, *HI]


def gpt(server: CacheServer) -> openai.OpenAI:
    import openai

    return openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)


def test_openai_chat_caches_a_repeated_prompt_per_key(clock: FakeClock) -> None:
    import openai

    server = OpenAIChatCacheServer(clock=clock)
    client = gpt(server)

    def cached(key: str, retention: Any = openai.omit) -> tuple[int, int | None]:
        usage = client.chat.completions.create(
            model="gpt", messages=CHAT, prompt_cache_key=key, prompt_cache_retention=retention
        ).usage
        assert usage is not None and usage.prompt_tokens_details is not None
        return usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens

    try:
        assert cached("a") == (2016, 0)
        assert cached("a") == (2016, 1920)
        assert cached("b") == (2016, 0)
        clock.advance(301)  # in_memory: 300 s since the last use
        assert cached("a", "24h") == (2016, 0)
        clock.advance(3600)
        assert cached("a") == (2016, 1920)
        assert [body.get("prompt_cache_key") for body in server.received] == list("aabaa")
        assert server.received[3]["prompt_cache_retention"] == "24h"
    finally:
        server.close()


def test_openai_responses_caches_per_key_and_parses(clock: FakeClock) -> None:
    server = OpenAIResponsesCacheServer(tool_turns=1, tool_input={"q": "cats"}, clock=clock)
    client = gpt(server)

    def respond(key: str, items: Any = "hi") -> Any:
        return client.responses.create(
            model="gpt",
            instructions=LONG,
            input=items,
            prompt_cache_key=key,
            prompt_cache_retention="24h",
        )

    def cached(key: str) -> int:
        usage = respond(key).usage
        return int(usage.input_tokens_details.cached_tokens)

    try:
        first = respond("a")
        call = first.output[0]
        assert call.type == "function_call"
        assert (call.call_id, call.name, json.loads(call.arguments)) == (
            "call_00",
            "lookup",
            {"q": "cats"},
        )
        assert first.usage is not None
        assert (first.usage.input_tokens, first.usage.input_tokens_details.cached_tokens) == (
            2013,
            0,
        )
        assert cached("a") == 1920
        assert cached("b") == 0
        done = [
            {"role": "user", "content": "hi"},
            {"type": "function_call", "call_id": "call_00", "name": "lookup", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_00", "output": "purr"},
        ]
        assert respond("a", done).output_text == "done"
        assert server.received[0]["prompt_cache_retention"] == "24h"
    finally:
        server.close()


def test_worker_env_declares_the_endpoint_and_key() -> None:
    servers = [AnthropicCacheServer(), OpenAIChatCacheServer(), OpenAIResponsesCacheServer()]
    try:
        envs = [s.worker_env(f"e{i}") for i, s in enumerate(servers)]
        env = combined_env(*envs)
        assert json.loads(env["ORCHESTRATOR_ENDPOINTS"]) == {
            "e0": {"provider": "anthropic", "base_url": servers[0].base_url},
            "e1": {"provider": "openai", "base_url": servers[1].base_url},
            "e2": {"provider": "openai_responses", "base_url": servers[2].base_url},
        }
        assert env["ANTHROPIC_API_KEY"] == env["OPENAI_API_KEY"] == KEY
        assert servers[0].base_url.count("/v1") == 0 and servers[1].base_url.endswith("/v1")
    finally:
        for server in servers:
            server.close()


@pytest.mark.parametrize(
    "make", [AnthropicCacheServer, OpenAIChatCacheServer, OpenAIResponsesCacheServer]
)
def test_an_agent_loop_runs_its_tool_turns_through_the_workers(
    make: type[CacheServer],
) -> None:
    server = make(tool_turns=2, tool_name="add", tool_input={"a": 2, "b": 3})
    try:
        with environment(server.worker_env("cached")):
            config = ModelConfig(provider=server.provider, model="m", endpoint="cached")
            spec = AgentSpec(name="calc", instructions=LONG, model=config, tools=["add"])
            result = run_agent(
                spec, "What is 2 + 3?", run_id="r1", tools=TOOLS, provider_for=providers()
            )
            assert result.output.answer == "done"
            assert len(server.received) == 3
            used = result.output.tokens
            if isinstance(server, AnthropicCacheServer):
                # No cache_control from the workers yet: nothing cached.
                assert sum(u["input_tokens"] for u in server.usages) == used.input_tokens
                assert used.cache_read_input_tokens == used.cache_creation_input_tokens == 0
            else:
                # Each turn extends the last one's prompt, so the later two read its long start.
                cached = [u.cached_tokens for u in server.sim_usages if isinstance(u, OpenAIUsage)]
                assert cached[0] == 0 and min(cached[1:]) >= 1920
                assert used.cached_tokens == sum(cached)
    finally:
        server.close()
