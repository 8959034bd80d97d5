"""The provider interface: one model call from a context to a response with usage."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, Field

from orchestrator.models import Message, ModelConfig, ToolCall, Usage
from orchestrator.models.cache_records import CacheDecision, PromptBlock
from orchestrator.models.thinking import ThinkingBlock
from orchestrator.tools import ToolInfo
from workers.execution.cancellation import CancelToken


class ProviderError(Exception):
    """A model call failed (the agent run ends with an ``error`` output). ``unbilled`` when
    the provider answered with an error, so the call cost nothing; otherwise (a connection
    lost mid-call) it may have been billed. ``status`` is the HTTP status the provider
    answered with, if it answered."""

    def __init__(self, message: str, *, unbilled: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.unbilled = unbilled
        self.status = status


class RetryableProviderError(ProviderError):
    """A model call failed in a way worth retrying (429, 5xx, connection); ``retry_after_s``
    is when the provider said to try again (``Retry-After`` or its rate-limit reset headers),
    when it did; ``rate_limited`` for a 429, which then pauses the call's pool for every
    worker."""

    def __init__(
        self,
        message: str,
        retry_after_s: float | None = None,
        *,
        unbilled: bool = False,
        rate_limited: bool = False,
    ) -> None:
        super().__init__(message, unbilled=unbilled)
        self.retry_after_s = retry_after_s
        self.rate_limited = rate_limited


class ModelResponse(BaseModel):
    """What one model call returned: a final text, or tool calls to run first."""

    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    thinking: list[ThinkingBlock] = Field(default_factory=list)
    """The reasoning blocks the answer came with (Anthropic), to be sent back with its tool
    calls."""
    usage: Usage = Field(default_factory=Usage)
    usage_reported: bool = True
    """False when the provider's answer had no usage (some OpenAI-compatible servers omit it):
    ``usage`` is then zero, and the run's budget charges the call at its reservation."""
    started_at: datetime | None = None
    """When the call really began, if later than asked: the attempt that answered, once it
    had its pool slot (pooled calls only)."""
    ended_at: datetime | None = None
    """When the call ended, taken while it still held its pool slot (pooled calls only)."""
    surface: str | None = None
    request_digest: str | None = None
    prompt: list[PromptBlock] | None = None
    """The request's blocks, when the cache governor read them."""
    cache: CacheDecision | None = None
    """The cache hints the cache governor added."""


class ModelProvider(Protocol):
    """One model surface. Implementations are thread-safe and keep no per-run state."""

    def complete(
        self,
        config: ModelConfig,
        messages: list[Message],
        cancel: CancelToken,
        tools: list[ToolInfo],
    ) -> ModelResponse:
        """Run one model call offering ``tools``; raise ``ProviderError`` on failure and
        ``Cancelled`` when ``cancel`` fires while waiting."""
        ...


class ModelSurface(ModelProvider, Protocol):
    """A provider that talks to a model itself (not a wrapper), and so knows how its requests
    are counted."""

    def input_token_bound(
        self, config: ModelConfig, messages: list[Message], tools: list[ToolInfo]
    ) -> int:
        """A number of input tokens the call will never be billed above."""
        ...
