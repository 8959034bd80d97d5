"""Model providers, one module each, behind the ``ModelProvider`` interface in ``base``."""

from __future__ import annotations

from workers.providers.base import ModelProvider, ModelResponse, ProviderError
from workers.providers.scripted import ScriptedModel

PROVIDERS: dict[str, ModelProvider] = {"scripted": ScriptedModel()}


def get_provider(name: str) -> ModelProvider:
    """The provider called ``name``; names are validated at submit time, so a miss is a bug."""
    try:
        return PROVIDERS[name]
    except KeyError:
        raise ProviderError(f"provider {name!r} is not available on this worker") from None


__all__ = ["PROVIDERS", "ModelProvider", "ModelResponse", "ProviderError", "get_provider"]
