"""Anthropic Messages API."""

from __future__ import annotations

from typing import Any

from orchestrator.models import Message, ModelConfig, ToolCall, Usage
from orchestrator.models.schemas import compact
from orchestrator.models.thinking import ThinkingBlock
from orchestrator.tools import ToolInfo
from workers.execution.cancellation import CancelToken
from workers.providers.base import ModelResponse, ProviderError
from workers.providers.http_common import (
    BodySurface,
    anthropic_client,
    api_params,
    priced,
    reads_response,
    request_digest,
    sdk_call,
)
from workers.providers.output_formats import OUTPUT_TOOL, anthropic_fields, asked_schema
from workers.tools.wire_names import wire_name

SURFACE = "anthropic.messages"
MIN_THINKING_BUDGET = 1024  # the least budget_tokens the API accepts
THINKING_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384}


def anthropic_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Messages as Anthropic turns: tool results go back in a user turn, consecutive ones
    together, as the API requires."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": message.content,
            }
            last = turns[-1] if turns else None
            if last and last["role"] == "user" and isinstance(last["content"], list):
                last["content"].append(block)
            else:
                turns.append({"role": "user", "content": [block]})
            continue
        if message.role == "assistant" and message.tool_calls:
            # Thinking first, whole and signed: the API refuses a tool use without the
            # reasoning that led to it (with thinking on).
            blocks: list[dict[str, Any]] = [thinking_block(block) for block in message.thinking]
            if message.content:
                blocks.append({"type": "text", "text": message.content})
            blocks.extend(
                {"type": "tool_use", "id": c.id, "name": wire_name(c.name), "input": c.arguments}
                for c in message.tool_calls
            )
            turns.append({"role": "assistant", "content": blocks})
            continue
        turns.append({"role": message.role, "content": message.content})
    return turns


def thinking_block(block: ThinkingBlock) -> dict[str, Any]:
    """A kept reasoning block as the Messages API takes it back."""
    if block.type == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.data}
    return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}


def kept_thinking(content: list[Any]) -> list[ThinkingBlock]:
    """The reasoning blocks of a response's content, as returned."""
    kept: list[ThinkingBlock] = []
    for block in content:
        if block.type == "thinking":
            kept.append(
                ThinkingBlock(type="thinking", thinking=block.thinking, signature=block.signature)
            )
        elif block.type == "redacted_thinking":
            kept.append(ThinkingBlock(type="redacted_thinking", data=block.data))
    return kept


class AnthropicMessages(BodySurface):
    """``provider="anthropic"``: the Messages API through the official SDK.

    Options: ``timeout_s`` (as for ``openai``: default 120 s, not retried); others are passed
    to the API. ``max_output_tokens`` is sent as ``max_tokens``. A thinking level (``low``,
    ``medium``, ``high`` or a token count) becomes an extended-thinking budget, within
    ``max_output_tokens`` (thinking counts as output). An output schema becomes structured
    outputs (``output_config.format``), or a forced tool call where those cannot take it
    (``workers/providers/output_formats.py``). A stop of the run's token aborts the call in
    flight.
    """

    surface = SURFACE

    def request_body(
        self, config: ModelConfig, messages: list[Message], tools: list[ToolInfo]
    ) -> dict[str, Any]:
        """The Messages API request for this call."""
        params, thinking = api_params(config)
        body: dict[str, Any] = {
            "model": config.model,
            "max_tokens": config.max_output_tokens,
            "messages": anthropic_messages(messages),
            **params,
        }
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        if system:
            body["system"] = system
        if tools:
            body["tools"] = [
                {
                    "name": wire_name(t.name),
                    "description": t.description,
                    "input_schema": t.parameters,
                }
                for t in tools
            ]
        if thinking:
            budget = THINKING_BUDGETS.get(str(thinking)) or int(thinking)
            # Thinking is output: its budget must leave room for the answer.
            budget = min(budget, config.max_output_tokens - 1)
            if budget < MIN_THINKING_BUDGET:
                raise ProviderError(
                    f"{SURFACE}: thinking needs max_output_tokens above {MIN_THINKING_BUDGET}",
                    unbilled=True,
                )
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        schema = asked_schema(config)
        if schema is not None:
            tools_sent, system_sent = body.get("tools", []), body.get("system", "")
            body.update(anthropic_fields(schema, bool(thinking), tools_sent, system_sent))
        return body

    @reads_response("ANTHROPIC_API_KEY")
    def send(self, config: ModelConfig, body: dict[str, Any], cancel: CancelToken) -> ModelResponse:
        """Make the call ``body`` describes."""
        cancel.check()
        client = anthropic_client(config, self.settings.endpoints)
        # The SDK imports a resource's modules when it is first reached: here, not inside the
        # call's time limit (a first call on a busy worker would spend it importing).
        create = client.messages.create
        response = sdk_call(SURFACE, client, lambda: create(**body), cancel, config)
        texts = [block.text for block in response.content if block.type == "text"]
        calls = [
            ToolCall(id=block.id, name=block.name, arguments=dict(block.input or {}))
            for block in response.content
            if block.type == "tool_use"
        ]
        answers = [call for call in calls if call.name == OUTPUT_TOOL]
        if "tool_choice" in body and answers:
            real = [call for call in calls if call.name != OUTPUT_TOOL]
            if real:
                # An answer given beside calls of real tools cannot have read their results:
                # the tools run (never dropped), and the model answers again after them.
                calls = real
            else:  # the answer, given through the output tool: its input is the value
                texts, calls = [compact(answers[0].arguments)], []
        used = response.usage
        usage = Usage(
            input_tokens=used.input_tokens,
            output_tokens=used.output_tokens,
            cache_creation_input_tokens=getattr(used, "cache_creation_input_tokens", None) or 0,
            cache_read_input_tokens=getattr(used, "cache_read_input_tokens", None) or 0,
        )
        return ModelResponse(
            text="".join(texts),
            tool_calls=calls,
            thinking=kept_thinking(response.content),
            usage=priced(usage, config, self.settings.prices),
            surface=SURFACE,
            request_digest=request_digest(body),
        )
