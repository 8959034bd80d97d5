"""OpenAI Responses API."""

from __future__ import annotations

import json
from typing import Any

from orchestrator.models import Message, ModelConfig, ToolCall, Usage
from orchestrator.tools import ToolInfo
from workers.execution.cancellation import CancelToken
from workers.providers.base import ModelResponse
from workers.providers.http_common import (
    BodySurface,
    api_params,
    openai_client,
    priced,
    reads_response,
    request_digest,
    sdk_call,
)
from workers.providers.openai_chat import parse_arguments
from workers.providers.output_formats import asked_schema, openai_format
from workers.tools.wire_names import wire_name

SURFACE = "openai.responses"


def input_items(messages: list[Message]) -> list[dict[str, Any]]:
    """Messages as Responses input items (system messages go to ``instructions``)."""
    items: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.tool_call_id,
                    "output": message.content,
                }
            )
            continue
        if message.content or not message.tool_calls:
            items.append({"role": message.role, "content": message.content})
        for call in message.tool_calls:
            items.append(
                {
                    "type": "function_call",
                    "call_id": call.id,
                    "name": wire_name(call.name),
                    "arguments": json.dumps(call.arguments),
                }
            )
    return items


class OpenAIResponses(BodySurface):
    """``provider="openai_responses"``: the Responses API through the official SDK.

    Options, time limit and cancel as for ``openai``; ``max_output_tokens`` is sent as is, a
    thinking level becomes ``reasoning.effort`` and an output schema ``text.format``.
    """

    surface = SURFACE

    def request_body(
        self, config: ModelConfig, messages: list[Message], tools: list[ToolInfo]
    ) -> dict[str, Any]:
        """The Responses API request for this call."""
        params, thinking = api_params(config)
        body: dict[str, Any] = {
            "model": config.model,
            "input": input_items(messages),
            "max_output_tokens": config.max_output_tokens,
            **params,
        }
        instructions = "\n\n".join(m.content for m in messages if m.role == "system")
        if instructions:
            body["instructions"] = instructions
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "name": wire_name(t.name),
                    "description": t.description,
                    "parameters": t.parameters,
                }
                for t in tools
            ]
        if thinking:
            body["reasoning"] = {"effort": thinking}
        schema = asked_schema(config)
        if schema is not None:
            body["text"] = {"format": {"type": "json_schema", **openai_format(schema)}}
        return body

    @reads_response("OPENAI_API_KEY")
    def send(self, config: ModelConfig, body: dict[str, Any], cancel: CancelToken) -> ModelResponse:
        """Make the call ``body`` describes."""
        cancel.check()
        client = openai_client(config, self.settings.endpoints)
        create = client.responses.create  # imported now, not within the time limit
        response = sdk_call(SURFACE, client, lambda: create(**body), cancel, config)
        texts: list[str] = []
        calls: list[ToolCall] = []
        for item in response.output:
            if item.type == "message":
                # A refusal (structured outputs) stands for the answer: its validation says why.
                texts.extend(
                    part.text if part.type == "output_text" else part.refusal
                    for part in item.content
                    if part.type in ("output_text", "refusal")
                )
            elif item.type == "function_call":
                calls.append(
                    ToolCall(
                        id=item.call_id, name=item.name, arguments=parse_arguments(item.arguments)
                    )
                )
        used = response.usage
        details = getattr(used, "input_tokens_details", None)
        usage = Usage(
            input_tokens=used.input_tokens if used else 0,
            output_tokens=used.output_tokens if used else 0,
            cached_tokens=(getattr(details, "cached_tokens", None) or 0) if details else 0,
        )
        return ModelResponse(
            text="".join(texts),
            tool_calls=calls,
            usage=priced(usage, config, self.settings.prices),
            usage_reported=used is not None,
            surface=SURFACE,
            request_digest=request_digest(body),
        )
