"""Model providers, one module per API surface, behind the ``ModelProvider`` interface.

``scripted`` is the offline model for demos, tests and benchmarks; ``openai``,
``openai_responses`` and ``anthropic`` use the official SDKs (extras ``[openai]``,
``[anthropic]``) and retry rate limits and server errors through ``RetryingProvider``.
Wrappers that must see each HTTP attempt (the shared pools) go inside the retries.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.settings import get_settings
from workers.providers.anthropic_messages import AnthropicMessages
from workers.providers.base import (
    ModelProvider,
    ModelResponse,
    ProviderError,
    RetryableProviderError,
)
from workers.providers.openai_chat import OpenAIChat
from workers.providers.openai_responses import OpenAIResponses
from workers.providers.retrying import RetryingProvider
from workers.providers.scripted import ScriptedModel

PROVIDERS: dict[str, ModelProvider] = {
    "scripted": ScriptedModel(),
    "openai": OpenAIChat(),
    "openai_responses": OpenAIResponses(),
    "anthropic": AnthropicMessages(),
}
_OFFLINE = frozenset({"scripted"})

ProviderWrap = Callable[[ModelProvider], ModelProvider]
"""Wraps a provider in another with the same interface (a pool, a meter)."""


def get_provider(name: str, wrap: ProviderWrap | None = None) -> ModelProvider:
    """The provider called ``name``, retrying if it goes over the network:
    ``RetryingProvider(wrap(base))``, so that ``wrap`` sees every attempt and none of the
    back-off between attempts (offline providers: ``wrap(base)``). Names are validated at
    submit time, so a miss here is a worker out of date with its clients."""
    try:
        provider = PROVIDERS[name]
    except KeyError:
        raise ProviderError(f"provider {name!r} is not available on this worker") from None
    if wrap is not None:
        provider = wrap(provider)
    if name in _OFFLINE:
        return provider
    return RetryingProvider(provider, get_settings().provider_retries)


__all__ = [
    "PROVIDERS",
    "ModelProvider",
    "ModelResponse",
    "ProviderError",
    "ProviderWrap",
    "RetryableProviderError",
    "get_provider",
]
