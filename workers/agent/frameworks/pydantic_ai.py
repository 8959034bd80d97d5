"""A pydantic-ai ``Model`` whose requests are model calls of an agent function's context.

A pydantic-ai ``Agent`` built on ``ctx.pydantic_ai_model()`` keeps its own loop (tools,
retries, structured output through its output tools), and each of its requests becomes one
call of ``FunctionContext.call_model``: the spec's model, under the run's budget, the pools,
the cache governor, the time limit, cancel and the lease guard, recorded as a turn. Its
messages are translated to the project's (system, user, assistant with tool calls, tool
results); what has no such form (files, images) is sent as its text.

Streaming is not offered: a streamed request would have to hold the budget's reservation
open across the stream, and the chain settles one call at a time.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import RequestUsage

from orchestrator.models import Message, ToolCall
from orchestrator.tools import ToolInfo

if TYPE_CHECKING:
    from workers.agent.context import FunctionContext

SETTINGS_AS_OPTIONS = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")
"""pydantic-ai settings passed on as the model's options (others are the worker's to decide)."""


class OrchestratorModel(Model):
    """pydantic-ai's view of an agent function's model (see the module docstring).

    Parameters:
        context: the agent function's context.
    """

    def __init__(self, context: FunctionContext) -> None:
        super().__init__()
        self._context = context

    @property
    def model_name(self) -> str:
        return self._context.spec.model.model

    @property
    def system(self) -> str:
        return self._context.spec.model.provider

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        settings, parameters = self.prepare_request(model_settings, model_request_parameters)
        prepared = self.prepare_messages(messages, parameters)
        options = {k: v for k, v in (settings or {}).items() if k in SETTINGS_AS_OPTIONS}
        limit = (settings or {}).get("max_tokens")
        config = self._context.model_config(limit if isinstance(limit, int) else None, **options)
        tools = [
            ToolInfo(
                name=tool.name,
                description=tool.description or "",
                parameters=tool.parameters_json_schema,
            )
            for tool in [*parameters.function_tools, *parameters.output_tools]
        ]
        ours = to_messages(prepared, self._context.spec.instructions)
        # The chain blocks (and runs an event loop of its own): off this one.
        response = await asyncio.to_thread(self._context.call_model, config, ours, tools)
        parts: list[TextPart | ToolCallPart] = []
        if response.text:
            parts.append(TextPart(content=response.text))
        parts += [
            ToolCallPart(tool_name=call.name, args=call.arguments, tool_call_id=call.id)
            for call in response.tool_calls
        ]
        used = response.usage
        # pydantic-ai's input count includes the cache's reads and writes.
        usage = RequestUsage(
            input_tokens=used.total_tokens - used.output_tokens,
            output_tokens=used.output_tokens,
            cache_read_tokens=used.cache_read_input_tokens + used.cached_tokens,
            cache_write_tokens=used.cache_creation_input_tokens,
        )
        return ModelResponse(parts=parts, usage=usage, model_name=self.model_name)


def to_messages(messages: list[ModelMessage], default_instructions: str) -> list[Message]:
    """pydantic-ai's history as the project's messages: the latest request's instructions
    (else the spec's) as the system message, then each part in order."""
    instructions = next(
        (m.instructions for m in reversed(messages) if isinstance(m, ModelRequest)), None
    )
    system = instructions or default_instructions
    ours = [Message(role="system", content=system)] if system else []
    for message in messages:
        if isinstance(message, ModelRequest):
            ours += [m for part in message.parts if (m := _request_part(part)) is not None]
        else:
            ours += _response_messages(message)
    return ours


def _request_part(part: Any) -> Message | None:
    if isinstance(part, SystemPromptPart):
        return Message(role="system", content=part.content)
    if isinstance(part, UserPromptPart):
        return Message(role="user", content=_text(part.content))
    if isinstance(part, ToolReturnPart):
        return Message(
            role="tool", content=part.model_response_str(), tool_call_id=part.tool_call_id
        )
    if isinstance(part, RetryPromptPart):
        if part.tool_name is None:
            return Message(role="user", content=part.model_response())
        return Message(role="tool", content=part.model_response(), tool_call_id=part.tool_call_id)
    return None


def _response_messages(response: ModelResponse) -> list[Message]:
    text = "".join(part.content for part in response.parts if isinstance(part, TextPart))
    calls = [
        ToolCall(id=part.tool_call_id, name=part.tool_name, arguments=part.args_as_dict())
        for part in response.parts
        if isinstance(part, ToolCallPart)
    ]
    if not text and not calls:
        return []
    return [Message(role="assistant", content=text, tool_calls=calls)]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(item if isinstance(item, str) else str(item) for item in content)
