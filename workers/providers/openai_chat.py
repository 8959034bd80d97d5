"""OpenAI Chat Completions (and OpenAI-compatible servers: vLLM, Ollama... via ``base_url``)."""

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
from workers.providers.output_formats import asked_schema, openai_format
from workers.tools.wire_names import wire_name

SURFACE = "openai.chat"


def parse_arguments(raw: str | None) -> dict[str, Any]:
    """A model's JSON arguments; text that is not a JSON object is kept for the tool's
    validation to refuse, so the model reads why."""
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {"__unparsable_arguments__": raw}
    return value if isinstance(value, dict) else {"__unparsable_arguments__": raw}


def chat_message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        return {
            "role": "assistant",
            "content": message.content or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": wire_name(call.name),
                        "arguments": json.dumps(call.arguments),
                    },
                }
                for call in message.tool_calls
            ],
        }
    return {"role": message.role, "content": message.content}


class OpenAIChat(BodySurface):
    """``provider="openai"``: the Chat Completions API through the official SDK.

    Options: ``base_url``, ``api_key_env`` (default ``OPENAI_API_KEY``), ``timeout_s`` (the
    call's time limit, default 120 s; a call past it fails and is not retried); any other
    option (``temperature``, ``top_p``...) is passed to the API; ``max_output_tokens`` is sent
    as ``max_completion_tokens``. A thinking level becomes ``reasoning_effort``, an output
    schema ``response_format`` (``json_schema``). A stop of the run's token aborts the call in
    flight.
    """

    surface = SURFACE

    def request_body(
        self, config: ModelConfig, messages: list[Message], tools: list[ToolInfo]
    ) -> dict[str, Any]:
        """The Chat Completions request for this call."""
        params, thinking = api_params(config)
        body: dict[str, Any] = {
            "model": config.model,
            "messages": [chat_message(m) for m in messages],
            "max_completion_tokens": config.max_output_tokens,
            **params,
        }
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": wire_name(t.name),
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in tools
            ]
        if thinking:
            body["reasoning_effort"] = thinking
        schema = asked_schema(config)
        if schema is not None:
            body["response_format"] = {"type": "json_schema", "json_schema": openai_format(schema)}
        return body

    @reads_response("OPENAI_API_KEY")
    def send(self, config: ModelConfig, body: dict[str, Any], cancel: CancelToken) -> ModelResponse:
        """Make the call ``body`` describes."""
        cancel.check()
        client = openai_client(config, self.settings.endpoints)
        create = client.chat.completions.create  # imported now, not within the time limit
        response = sdk_call(SURFACE, client, lambda: create(**body), cancel, config)
        message = response.choices[0].message
        calls = [
            ToolCall(id=c.id, name=c.function.name, arguments=parse_arguments(c.function.arguments))
            for c in message.tool_calls or []
        ]
        used = response.usage
        details = getattr(used, "prompt_tokens_details", None)
        usage = Usage(
            input_tokens=used.prompt_tokens if used else 0,
            output_tokens=used.completion_tokens if used else 0,
            cached_tokens=(getattr(details, "cached_tokens", None) or 0) if details else 0,
        )
        return ModelResponse(
            # A refusal (structured outputs) stands for the answer: its validation says why.
            text=message.content or getattr(message, "refusal", None) or "",
            tool_calls=calls,
            usage=priced(usage, config, self.settings.prices),
            usage_reported=used is not None,
            surface=SURFACE,
            request_digest=request_digest(body),
        )
