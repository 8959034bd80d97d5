"""What the SDK-backed providers share: clients, keys, prices, digests, error mapping."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from typing import Any

from orchestrator.models import REQUEST_OPTIONS, ModelConfig, Usage
from orchestrator.settings import Endpoint, Price, get_settings
from workers.providers.base import ProviderError, RetryableProviderError
from workers.providers.inflight import thread_client
from workers.providers.redaction import redact

# Options that configure the adapter; every other option is passed to the API as a parameter.
ADAPTER_OPTIONS = frozenset({"base_url", "api_key_env", "timeout_s"})
# A model call past this (or its ``timeout_s`` option) fails, and is not retried: a call that
# slow is a stuck call, and trying it again would only hold the agent longer.
DEFAULT_TIMEOUT_S = 120.0


def endpoint_of(config: ModelConfig) -> Endpoint | None:
    """The worker's endpoint that ``config`` names (None: the provider's own service). A name
    this worker does not declare, or declares for another provider, is an error: a key goes
    only where the worker's own configuration says."""
    if config.endpoint is None:
        return None
    endpoint = get_settings().endpoints.get(config.endpoint)
    if endpoint is None or endpoint.provider != config.provider:
        raise ProviderError(
            f"{config.provider}: endpoint {config.endpoint!r} is not declared on this worker "
            "(ORCHESTRATOR_ENDPOINTS)"
        )
    return endpoint


def api_key(config: ModelConfig, default_env: str) -> str:
    """The API key, from the worker's environment only, in the variable the worker's endpoint
    names (else ``default_env``); never a name a run chose."""
    endpoint = endpoint_of(config)
    name = endpoint.api_key_env if endpoint and endpoint.api_key_env else default_env
    key = os.environ.get(name)
    if not key:
        raise ProviderError(f"{config.provider}: set {name} in the worker's environment")
    return key


def api_params(config: ModelConfig) -> tuple[dict[str, Any], str | None]:
    """The options passed through to the API (temperature, max_tokens, ...), and the thinking
    level, which each surface spells its own way. Options that would rewrite the request
    (``REQUEST_OPTIONS``, refused at submit) are dropped, should one slip past validation."""
    dropped = ADAPTER_OPTIONS | REQUEST_OPTIONS
    params = {k: v for k, v in config.options.items() if k not in dropped}
    return params, params.pop("thinking", None)


def request_digest(body: dict[str, Any]) -> str:
    """sha256 of the provider-native request body, canonically serialized."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def priced(usage: Usage, provider: str, model: str) -> Usage:
    """``usage`` with its cost from the configured price table (0 without a price)."""
    price = get_settings().prices.get(f"{provider}:{model}")
    if price is None:
        return usage
    usage.cost_usd = _cost(usage, price)
    return usage


def _cost(usage: Usage, price: Price) -> float:
    cached_price = price.input if price.cached_input is None else price.cached_input
    write_price = price.input if price.cache_write is None else price.cache_write
    cached = usage.cached_tokens + usage.cache_read_input_tokens
    # OpenAI counts cached tokens inside input_tokens; Anthropic counts them beside it.
    plain = usage.input_tokens - usage.cached_tokens
    per_token = (
        plain * price.input
        + cached * cached_price
        + usage.cache_creation_input_tokens * write_price
        + usage.output_tokens * price.output
    )
    return per_token / 1_000_000


def translate_error(error: Exception, surface: str, secrets: Iterable[str] = ()) -> ProviderError:
    """An SDK exception as a provider error: retryable for 429, 5xx, timeouts, connections.
    Its text is redacted of ``secrets`` (the key used for the call) and of anything shaped
    like a credential, since upstream bodies may echo the request's headers."""
    status = getattr(error, "status_code", None)
    response = getattr(error, "response", None)
    retry_after = _retry_after(response.headers if response is not None else None)
    message = redact(f"{surface}: {type(error).__name__}: {error}", secrets)
    connection_failure = type(error).__name__ in ("APIConnectionError", "APITimeoutError")
    if status == 429 or (isinstance(status, int) and status >= 500) or connection_failure:
        return RetryableProviderError(message, retry_after)
    return ProviderError(message)


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our backoff


def openai_client(config: ModelConfig) -> Any:
    """This thread's async OpenAI SDK client for ``config`` (its own retries off: ours apply),
    for calls through ``inflight.run`` in this thread."""
    settings = _client_settings(config, "OPENAI_API_KEY")
    return thread_client(("openai", *settings), lambda: _openai_client(*settings))


def anthropic_client(config: ModelConfig) -> Any:
    """This thread's async Anthropic SDK client for ``config`` (its own retries off: ours
    apply), for calls through ``inflight.run`` in this thread."""
    settings = _client_settings(config, "ANTHROPIC_API_KEY")
    return thread_client(("anthropic", *settings), lambda: _anthropic_client(*settings))


def call_timeout_s(config: ModelConfig) -> float:
    """The time limit of one model call: the ``timeout_s`` option, else 120 s."""
    return float(config.options.get("timeout_s", DEFAULT_TIMEOUT_S))


def _client_settings(config: ModelConfig, key_env: str) -> tuple[str | None, str, float]:
    # The SDK applies the limit to each connect, write and read; those start after the
    # whole call's limit in ``inflight.run``, which therefore always fires first.
    timeout_s = call_timeout_s(config)
    endpoint = endpoint_of(config)
    return endpoint.base_url if endpoint else None, api_key(config, key_env), timeout_s


def _openai_client(base_url: str | None, key: str, timeout_s: float) -> Any:
    import openai

    return openai.AsyncOpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=timeout_s)


def _anthropic_client(base_url: str | None, key: str, timeout_s: float) -> Any:
    import anthropic

    return anthropic.AsyncAnthropic(
        api_key=key, base_url=base_url, max_retries=0, timeout=timeout_s
    )
