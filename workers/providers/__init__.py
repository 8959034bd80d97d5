"""Model providers, one module per API surface, behind the ``ModelProvider`` interface.

``scripted`` is the offline model for demos, tests and benchmarks; ``openai``,
``openai_responses`` and ``anthropic`` use the official SDKs (extras ``[openai]``,
``[anthropic]``) and retry rate limits and server errors through ``RetryingProvider``.
Wrappers that must see each HTTP attempt (the shared pools) go inside the retries.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.config.settings import get_settings
from workers.providers.anthropic_messages import AnthropicMessages
from workers.providers.base import (
    ModelProvider,
    ModelResponse,
    ModelSurface,
    ProviderError,
    RetryableProviderError,
)
from workers.providers.openai_chat import OpenAIChat
from workers.providers.openai_responses import OpenAIResponses
from workers.providers.retrying import RetryingProvider
from workers.providers.scripted import ScriptedModel

PROVIDERS: dict[str, ModelSurface] = {
    "scripted": ScriptedModel(),
    "openai": OpenAIChat(),
    "openai_responses": OpenAIResponses(),
    "anthropic": AnthropicMessages(),
}
_OFFLINE = frozenset({"scripted"})

Wrap = Callable[[ModelSurface], ModelProvider]


def get_provider(name: str, wrap: Wrap | None = None) -> ModelProvider:
    """The provider called ``name``, retrying if it goes over the network. ``wrap`` builds
    what each attempt calls from the surface (a budget, a pool): the retries stay outside it,
    so that every attempt is gated and counted and a back-off holds nothing. Names are
    validated at submit time, so a miss here is a worker out of date with its clients."""
    try:
        surface = PROVIDERS[name]
    except KeyError:
        raise ProviderError(f"provider {name!r} is not available on this worker") from None
    attempt = wrap(surface) if wrap is not None else surface
    if name in _OFFLINE:
        return attempt
    return RetryingProvider(attempt, get_settings().provider_retries)


__all__ = [
    "PROVIDERS",
    "ModelProvider",
    "ModelResponse",
    "ModelSurface",
    "ProviderError",
    "RetryableProviderError",
    "Wrap",
    "get_provider",
]
