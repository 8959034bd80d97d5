"""The OpenAI cache servers: Chat Completions and Responses wire formats, with
``cached_tokens`` from ``OpenAICache`` run on the server's own cut of the prompt
(``tests/servers/cache_wire.py``). Import them from ``tests/servers/cache_servers.py``."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any, Unpack

from benchmarks.prompt_cache_sim import OPENAI_RETENTION_S, Block, OpenAICache, OpenAIUsage
from tests.servers.cache_server_base import CacheServer, ServerOptions
from tests.servers.cache_wire import chat_prompt, responses_prompt, tokens


class OpenAICacheServer(CacheServer):
    """What the two OpenAI formats share: ``OpenAICache`` (its knobs are this constructor's),
    fed ``prompt_cache_key`` and ``prompt_cache_retention``, and the error body. The newer
    ``prompt_cache_options`` (explicit breakpoints, gpt-5.6 and later) is recorded, not
    modelled. ``refuses`` names body fields the server does not know and answers with a 400,
    as OpenAI-compatible servers that forbid unknown fields do; ``model_refuses`` the same
    for one model (a model that takes no ``prompt_cache_retention``, say)."""

    provider = "openai"
    key_env = "OPENAI_API_KEY"
    url_suffix = "/v1"

    def __init__(
        self,
        *,
        min_tokens: int = 1024,
        increment: int = 128,
        route_tokens: int = 256,
        key_rpm: int = 15,
        window_s: float = 60.0,
        retention_s: Mapping[str, float] = OPENAI_RETENTION_S,
        default_retention: str = "in_memory",
        refuses: Collection[str] = (),
        model_refuses: Mapping[str, Collection[str]] | None = None,
        **options: Unpack[ServerOptions],
    ) -> None:
        self.refuses = frozenset(refuses)
        self.model_refuses = {model: frozenset(f) for model, f in (model_refuses or {}).items()}
        self.cache = OpenAICache(
            min_tokens, increment, route_tokens, key_rpm, window_s, retention_s, default_retention
        )
        super().__init__(**options)

    def simulate(self, body: dict[str, Any], now: float, available_at: float) -> OpenAIUsage:
        """Run ``body``'s prompt (cut by ``prompt``) through the cache."""
        return self.cache.request(
            self.prompt(body),
            body.get("prompt_cache_key"),
            body.get("prompt_cache_retention"),
            now,
            available_at,
            model=body["model"],
        )

    def prompt(self, body: dict[str, Any]) -> list[Block]:
        """The blocks of ``body``'s prompt."""
        raise NotImplementedError

    def refusal(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The error body for a field of ``body`` this server refuses, or None."""
        refused = self.refuses | self.model_refuses.get(body.get("model", ""), frozenset())
        unknown = sorted(refused & body.keys())
        if not unknown:
            return None
        return self.error(f"Unrecognized request argument supplied: {unknown[0]}")

    def error(self, message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
        """An OpenAI error body."""
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class OpenAIChatCacheServer(OpenAICacheServer):
    """``POST /v1/chat/completions`` with ``usage.prompt_tokens_details.cached_tokens``."""

    path = "/v1/chat/completions"

    def prompt(self, body: dict[str, Any]) -> list[Block]:
        """The blocks of a Chat Completions prompt."""
        return chat_prompt(body)

    def answer(
        self, body: dict[str, Any], now: float, available_at: float
    ) -> tuple[int, dict[str, Any], OpenAIUsage | None]:
        """The chat completion answering ``body``, or its 400."""
        refused = self.refusal(body)
        if refused is not None:
            return 400, refused, None
        used = self.simulate(body, now, available_at)
        turns = sum(message["role"] == "assistant" for message in body["messages"])
        message: dict[str, Any] = {"role": "assistant", "content": self.script.final_text}
        finish = "stop"
        if self.tool_turn(turns):
            function = {
                "name": self.script.tool_name,
                "arguments": json.dumps(self.script.tool_input),
            }
            call = {"id": f"call_{turns:02d}", "type": "function", "function": function}
            message, finish = (
                {"role": "assistant", "content": None, "tool_calls": [call]},
                "tool_calls",
            )
        output = tokens(message)
        usage = {
            "prompt_tokens": used.prompt_tokens,
            "completion_tokens": output,
            "total_tokens": used.prompt_tokens + output,
            "prompt_tokens_details": {"cached_tokens": used.cached_tokens},
        }
        reply = {
            "id": f"chatcmpl-{len(self.received):06d}",
            "object": "chat.completion",
            "created": int(now),
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }
        return 200, reply, used


class OpenAIResponsesCacheServer(OpenAICacheServer):
    """``POST /v1/responses`` with ``usage.input_tokens_details.cached_tokens``.
    ``previous_response_id`` is refused: the server keeps no responses."""

    path = "/v1/responses"
    provider = "openai_responses"

    def prompt(self, body: dict[str, Any]) -> list[Block]:
        """The blocks of a Responses prompt."""
        return responses_prompt(body)

    def answer(
        self, body: dict[str, Any], now: float, available_at: float
    ) -> tuple[int, dict[str, Any], OpenAIUsage | None]:
        """The response answering ``body``."""
        if body.get("previous_response_id"):
            return 400, self.error("previous_response_id: this test server keeps none"), None
        refused = self.refusal(body)
        if refused is not None:
            return 400, refused, None
        used = self.simulate(body, now, available_at)
        turns = _assistant_turns(body.get("input") or [])
        if self.tool_turn(turns):
            item: dict[str, Any] = {
                "type": "function_call",
                "id": f"fc_{turns:02d}",
                "call_id": f"call_{turns:02d}",
                "name": self.script.tool_name,
                "arguments": json.dumps(self.script.tool_input),
                "status": "completed",
            }
        else:
            text = {"type": "output_text", "text": self.script.final_text, "annotations": []}
            item = {
                "type": "message",
                "id": f"msg_{turns:02d}",
                "role": "assistant",
                "status": "completed",
                "content": [text],
            }
        output = tokens(item)
        usage = {
            "input_tokens": used.prompt_tokens,
            "input_tokens_details": {"cached_tokens": used.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": used.prompt_tokens + output,
        }
        reply = {
            "id": f"resp_{len(self.received):06d}",
            "object": "response",
            "created_at": now,
            "status": "completed",
            "model": body["model"],
            "output": [item],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": body.get("tools") or [],
            "prompt_cache_key": body.get("prompt_cache_key"),
            "prompt_cache_retention": body.get("prompt_cache_retention"),
            "usage": usage,
        }
        return 200, reply, used


def _assistant_turns(items: Any) -> int:
    """Runs of consecutive assistant items (messages, function calls, reasoning) in a
    Responses input: one turn may hold a message and several calls."""
    if isinstance(items, str):
        return 0
    turns, inside = 0, False
    for item in items:
        mine = item.get("role") == "assistant" or item.get("type") in ("function_call", "reasoning")
        turns += mine and not inside
        inside = mine
    return turns
