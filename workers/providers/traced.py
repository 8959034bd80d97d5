"""A wrapper that makes a span of every model call attempt (``chat {model}``, after the GenAI
semantic conventions): provider, model, output limit, then the tokens the call reported.

It sits inside the budget and the pool (Budgeted(Pooled(Traced(surface)))), so that a span is
an attempt really sent: a call the budget denies is no span (its denial is an event of the
agent's span), and the wait for a pool slot is not counted as the model's time.
"""

from __future__ import annotations

from opentelemetry.trace import SpanKind

from orchestrator import tracing
from orchestrator.models import Message, ModelConfig
from orchestrator.tools import ToolInfo
from workers import spans
from workers.execution.cancellation import CancelToken
from workers.providers.base import ModelResponse, ModelSurface


class TracedProvider:
    """``inner`` with a span around each call.

    Parameters:
        inner: the model surface (with the cache governor, when there is one).
    """

    def __init__(self, inner: ModelSurface) -> None:
        self._inner = inner

    def input_token_bound(
        self, config: ModelConfig, messages: list[Message], tools: list[ToolInfo]
    ) -> int:
        """The inner surface's bound."""
        return self._inner.input_token_bound(config, messages, tools)

    def complete(
        self,
        config: ModelConfig,
        messages: list[Message],
        cancel: CancelToken,
        tools: list[ToolInfo],
    ) -> ModelResponse:
        attributes = spans.chat_attributes(config)
        name = f"chat {config.model}"
        with tracing.span_under(None, name, attributes, SpanKind.CLIENT) as span:
            response = self._inner.complete(config, messages, cancel, tools)
            span.set_attributes(spans.usage_attributes(response.usage))
            return response
