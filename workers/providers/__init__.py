"""Model providers, one module per API surface, behind the ``ModelProvider`` interface.

``scripted`` is the offline model for demos, tests and benchmarks; ``openai``,
``openai_responses`` and ``anthropic`` use the official SDKs (extras ``[openai]``,
``[anthropic]``) and retry rate limits and server errors through ``RetryingProvider``.
Wrappers that must see each HTTP attempt (the shared pools) go inside the retries.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from orchestrator.config.settings import Settings
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

PROVIDERS: dict[str, Callable[[Settings], ModelSurface]] = {
    "scripted": lambda _settings: ScriptedModel(),  # offline: no endpoint, key or price list
    "openai": OpenAIChat,
    "openai_responses": OpenAIResponses,
    "anthropic": AnthropicMessages,
}
"""Each provider name with what makes its surface from the worker's settings."""
_OFFLINE = frozenset({"scripted"})

Wrap = Callable[[ModelSurface], ModelProvider]


def surface_of(name: str, settings: Settings) -> ModelSurface:
    """The API surface called ``name``, using ``settings``' endpoints and prices. Names are
    validated at submit time, so a miss here is a worker out of date with its clients."""
    try:
        make = PROVIDERS[name]
    except KeyError:
        raise ProviderError(f"provider {name!r} is not available on this worker") from None
    return make(settings)


def get_provider(name: str, settings: Settings, wrap: Wrap | None = None) -> ModelProvider:
    """The provider called ``name``, as ``settings`` configure it, retrying if it goes over
    the network (``settings.provider_retries`` times). ``wrap`` builds what each attempt calls
    from the surface (a budget, a pool): the retries stay outside it, so that every attempt is
    gated and counted and a back-off holds nothing."""
    surface = surface_of(name, settings)
    attempt = wrap(surface) if wrap is not None else surface
    if name in _OFFLINE:
        return attempt
    return RetryingProvider(attempt, settings.provider_retries)


def providers_for(settings: Settings) -> Callable[[str], ModelProvider]:
    """``get_provider`` with ``settings``: what an agent run takes as its ``provider_for``."""
    return functools.partial(get_provider, settings=settings)


__all__ = [
    "PROVIDERS",
    "ModelProvider",
    "ModelResponse",
    "ModelSurface",
    "ProviderError",
    "RetryableProviderError",
    "Wrap",
    "get_provider",
    "providers_for",
    "surface_of",
]
