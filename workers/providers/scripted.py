"""The offline ``scripted`` model: deterministic, no network. For demos, tests and benchmarks
only; it says so in every default answer.

Options (``ModelConfig.options``):
    latency_ms, jitter_ms: how long a call takes; jitter is uniform in +-jitter_ms, seeded by
        ``seed`` and the prompt, so the same call always takes the same time.
    fail_on: a substring; a call whose context contains it raises a provider error at once,
        before its latency (as a provider refuses a request).
    script: a list of turns, each ``{"text": ...}`` or ``{"tool_calls": [{"name", "arguments"}]}``;
        turn k answers the k-th model call of the run; past the end the default answer follows.
    answer: a fixed final answer instead of the default one.
    output_schema: set by the worker from the agent's ``output_schema``: the default answer is
        then a value the schema validates, as compact JSON (``workers/providers/schema_example``);
        ``script`` and ``answer`` still win, so that invalid answers can be scripted.
    cost_per_1k_tokens: a price in USD per 1,000 tokens (input and output alike), so that cost
        budgets can be exercised offline; priced in ``orchestrator.prices`` like every model.

Its usage is what ``estimate_tokens`` counts of the context and of the answer; an answer over
``max_output_tokens`` is cut there, as a real model stops at its output limit.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from orchestrator.models import Message, ModelConfig, ToolCall, Usage
from orchestrator.models.schemas import OUTPUT_SCHEMA_OPTION, compact
from orchestrator.prices import call_cost
from orchestrator.tokens import CHARS_PER_TOKEN, estimate_tokens
from orchestrator.tools import ToolInfo
from workers.execution.cancellation import CancelToken
from workers.providers.base import ModelResponse, ProviderError
from workers.providers.schema_example import example


class ScriptedModel:
    """The deterministic offline model (see the module docstring for its options)."""

    def input_token_bound(
        self, config: ModelConfig, messages: list[Message], tools: list[ToolInfo]
    ) -> int:
        """Exactly the input tokens the call will report."""
        return estimate_tokens(_prompt_text(messages))

    def complete(
        self,
        config: ModelConfig,
        messages: list[Message],
        cancel: CancelToken,
        tools: list[ToolInfo] | None = None,
    ) -> ModelResponse:
        options = config.options
        prompt_text = _prompt_text(messages)
        turn = sum(1 for message in messages if message.role == "assistant")
        fail_on = options.get("fail_on")
        if fail_on and fail_on in prompt_text:
            # At once, as a provider answers a request it refuses (a 400 takes no model time).
            raise ProviderError(f"scripted failure: the prompt contains {fail_on!r}", unbilled=True)
        cancel.sleep(self._latency_s(options, prompt_text, turn))
        response = self._turn(config, messages, turn)
        output_text = response.text + "".join(str(call.arguments) for call in response.tool_calls)
        output_tokens = estimate_tokens(output_text)
        if output_tokens > config.max_output_tokens:
            output_tokens = config.max_output_tokens
            response.text = response.text[: output_tokens * CHARS_PER_TOKEN]
        usage = Usage(input_tokens=estimate_tokens(prompt_text), output_tokens=output_tokens)
        # The scripted model always has a price (0 without cost_per_1k_tokens).
        usage.cost_usd = call_cost(config, usage) or 0.0
        response.usage = usage
        return response

    @staticmethod
    def _latency_s(options: dict[str, Any], prompt_text: str, turn: int) -> float:
        latency = float(options.get("latency_ms", 0))
        jitter = float(options.get("jitter_ms", 0))
        if jitter:
            digest = hashlib.sha256(f"{options.get('seed', 0)}|{turn}|{prompt_text}".encode())
            latency += random.Random(digest.digest()).uniform(-jitter, jitter)
        return max(latency, 0.0) / 1000

    @staticmethod
    def _turn(config: ModelConfig, messages: list[Message], turn: int) -> ModelResponse:
        script = config.options.get("script") or []
        if turn < len(script):
            step = script[turn]
            if "tool_calls" in step:
                calls = [
                    ToolCall(
                        id=f"call_{turn}_{i}", name=c["name"], arguments=c.get("arguments", {})
                    )
                    for i, c in enumerate(step["tool_calls"])
                ]
                return ModelResponse(tool_calls=calls)
            return ModelResponse(text=str(step.get("text", "")))
        if "answer" in config.options:
            return ModelResponse(text=str(config.options["answer"]))
        schema = config.options.get(OUTPUT_SCHEMA_OPTION)
        if schema is not None:
            return ModelResponse(text=compact(example(schema)))
        last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        return ModelResponse(text=f"[scripted {config.model}] {last_user}")


def _prompt_text(messages: list[Message]) -> str:
    return "\n".join(message.content for message in messages)
