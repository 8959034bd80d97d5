"""An OpenAI Agents SDK ``Model`` whose requests are model calls of an agent function's context.

An ``agents.Agent(model=ctx.openai_agents_model())`` run by the SDK's ``Runner`` keeps its own
loop (tools, handoffs, guardrails); each of its requests becomes one call of
``FunctionContext.call_model``: the spec's model, under the run's budget, the pools, the cache
governor, the time limit, cancel and the lease guard, recorded as a turn. The SDK's own
converters translate its Responses-format items to chat messages and the answer back, so the
SDK sees what its Chat Completions model would give it.

A structured ``output_type`` is asked for in the system message, with its JSON schema (the
SDK validates the answer). Streaming is not offered (see ``pydantic_ai.py``), nor are hosted
tools, previous response ids or stored conversations: the request a worker sends is built
from the spec and the function's messages alone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from agents import set_tracing_disabled
from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import ModelResponse, TResponseInputItem, TResponseStreamEvent
from agents.model_settings import ModelSettings
from agents.models.chatcmpl_converter import Converter
from agents.models.interface import Model, ModelTracing
from agents.tool import Tool
from agents.usage import Usage
from openai.types.chat import ChatCompletionMessage, ChatCompletionMessageFunctionToolCall
from openai.types.chat.chat_completion_message_function_tool_call import Function

from orchestrator.models import Message, ToolCall
from orchestrator.tools import ToolInfo
from workers.providers.openai_chat import parse_arguments

if TYPE_CHECKING:
    from workers.agent.context import FunctionContext

SETTINGS_AS_OPTIONS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
"""SDK settings passed on as the model's options (others are the worker's to decide)."""


class OrchestratorAgentsModel(Model):
    """The Agents SDK's view of an agent function's model (see the module docstring).

    Making one turns the SDK's tracing off for the worker process: its exporter would send
    the agent's prompts and answers to OpenAI with the worker's key; the run's own spans and
    records trace the calls instead.

    Parameters:
        context: the agent function's context.
    """

    def __init__(self, context: FunctionContext) -> None:
        set_tracing_disabled(True)
        self._context = context

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None = None,
        conversation_id: str | None = None,
        prompt: Any = None,
    ) -> ModelResponse:
        if previous_response_id or conversation_id or prompt:
            raise ValueError(
                "stored responses, conversations and prompts are not available: the request "
                "is built from the agent's spec and messages"
            )
        system = system_instructions or self._context.spec.instructions
        if output_schema is not None and not output_schema.is_plain_text():
            schema = json.dumps(output_schema.json_schema())
            system = f"{system}\n\nAnswer with one JSON value matching this schema: {schema}"
        messages = [Message(role="system", content=system.strip())] if system.strip() else []
        messages += [_message(m) for m in Converter.items_to_messages(input)]
        offered = [_tool(Converter.tool_to_openai(tool)) for tool in tools]
        offered += [_tool(Converter.convert_handoff_tool(handoff)) for handoff in handoffs]
        options = {
            name: value
            for name in SETTINGS_AS_OPTIONS
            if (value := getattr(model_settings, name, None)) is not None
        }
        config = self._context.model_config(model_settings.max_tokens, **options)
        # The chain blocks (and runs an event loop of its own): off this one.
        response = await asyncio.to_thread(self._context.call_model, config, messages, offered)
        answer = ChatCompletionMessage(
            role="assistant",
            content=response.text or None,
            tool_calls=[
                ChatCompletionMessageFunctionToolCall(
                    id=call.id,
                    type="function",
                    function=Function(name=call.name, arguments=json.dumps(call.arguments)),
                )
                for call in response.tool_calls
            ]
            or None,
        )
        used = response.usage
        usage = Usage(
            requests=1,
            input_tokens=used.total_tokens - used.output_tokens,
            output_tokens=used.output_tokens,
            total_tokens=used.total_tokens,
        )
        output = Converter.message_to_output_items(answer)
        return ModelResponse(output=output, usage=usage, response_id=None)

    def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None = None,
        conversation_id: str | None = None,
        prompt: Any = None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        raise NotImplementedError("streamed runs are not available: use Runner.run")


def _tool(chat_tool: Any) -> ToolInfo:
    function = chat_tool["function"]
    return ToolInfo(
        name=function["name"],
        description=function.get("description") or "",
        parameters=function.get("parameters") or {},
    )


def _message(chat: Any) -> Message:
    """A Chat Completions message (as the SDK's converter makes it) as the project's."""
    role = chat["role"]
    content = _text(chat.get("content"))
    if role == "tool":
        return Message(role="tool", content=content, tool_call_id=chat.get("tool_call_id"))
    if role == "assistant":
        calls = [
            ToolCall(
                id=call["id"],
                name=call["function"]["name"],
                arguments=parse_arguments(call["function"].get("arguments")),
            )
            for call in chat.get("tool_calls") or []
        ]
        return Message(role="assistant", content=content, tool_calls=calls)
    return Message(role="user" if role == "user" else "system", content=content)


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))
