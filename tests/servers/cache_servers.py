"""Local servers speaking the Anthropic Messages, OpenAI Chat Completions and OpenAI Responses
wire formats, whose usage comes from the prompt-cache simulator (``benchmarks/prompt_cache_sim``)
run on their own parse of each request (``tests/servers/cache_wire.py``).

    server = AnthropicCacheServer(tool_turns=1, clock=FakeClock())
    client = anthropic.Anthropic(base_url=server.base_url, api_key="k")
    ...  # or a worker with server.worker_env("cached") serving endpoint "cached"
    server.usages[-1]["cache_read_input_tokens"]
    server.close()
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Unpack

from benchmarks.prompt_cache_sim import (
    ANTHROPIC_TTL_S,
    AnthropicCache,
    AnthropicUsage,
    CacheControlError,
)
from tests.servers.cache_server_base import CacheServer, FakeClock, ServerOptions, combined_env
from tests.servers.cache_wire import anthropic_prompt, tokens
from tests.servers.openai_cache_servers import OpenAIChatCacheServer, OpenAIResponsesCacheServer

__all__ = [
    "AnthropicCacheServer",
    "CacheServer",
    "FakeClock",
    "OpenAIChatCacheServer",
    "OpenAIResponsesCacheServer",
    "combined_env",
]


class AnthropicCacheServer(CacheServer):
    """``POST /v1/messages``: prompt caching as ``AnthropicCache(min_tokens, lookback,
    max_breakpoints, ttl_s)`` computes it; breakpoints it refuses (a fifth one, a longer TTL
    after a shorter) get a 400 ``invalid_request_error``."""

    path = "/v1/messages"
    provider = "anthropic"
    key_env = "ANTHROPIC_API_KEY"
    url_suffix = ""

    def __init__(
        self,
        *,
        min_tokens: int = 1024,
        lookback: int = 20,
        max_breakpoints: int = 4,
        ttl_s: Mapping[str, float] = ANTHROPIC_TTL_S,
        **options: Unpack[ServerOptions],
    ) -> None:
        self.cache = AnthropicCache(min_tokens, lookback, max_breakpoints, ttl_s)
        super().__init__(**options)

    def answer(
        self, body: dict[str, Any], now: float, available_at: float
    ) -> tuple[int, dict[str, Any], AnthropicUsage | None]:
        """The Messages response to ``body``, or its 400."""
        blocks, marks = anthropic_prompt(body)
        try:
            used = self.cache.request(blocks, marks, now, available_at, model=body["model"])
        except CacheControlError as refused:
            return 400, self.error(str(refused)), None
        turns = sum(message["role"] == "assistant" for message in body["messages"])
        if self.tool_turn(turns):
            call = {
                "type": "tool_use",
                "id": f"toolu_{turns:02d}",
                "name": self.script.tool_name,
                "input": self.script.tool_input,
            }
            content, stop = [call], "tool_use"
        else:
            content, stop = [{"type": "text", "text": self.script.final_text}], "end_turn"
        usage = {
            "input_tokens": used.input_tokens,
            "output_tokens": tokens(content),
            "cache_creation_input_tokens": used.cache_creation_input_tokens,
            "cache_read_input_tokens": used.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": used.ephemeral_5m_input_tokens,
                "ephemeral_1h_input_tokens": used.ephemeral_1h_input_tokens,
            },
        }
        reply = {
            "id": f"msg_{len(self.received):06d}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }
        return 200, reply, used

    def error(self, message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
        """An Anthropic error body."""
        return {"type": "error", "error": {"type": kind, "message": message}}
