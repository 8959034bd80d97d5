"""What the SDK-backed providers share: clients, keys, prices, digests, error mapping."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from orchestrator.config.settings import Endpoint, Price, Settings
from orchestrator.models import (
    OUTPUT_LIMIT_OPTIONS,
    REQUEST_OPTIONS,
    WORKER_SET_OPTIONS,
    Message,
    ModelConfig,
    Usage,
)
from orchestrator.prices import call_cost
from orchestrator.tools import ToolInfo
from workers.execution.cancellation import Cancelled, CancelToken
from workers.providers import inflight
from workers.providers.base import ModelResponse, ProviderError, RetryableProviderError
from workers.providers.inflight import thread_client
from workers.providers.pooled import retry_wait_s
from workers.providers.redaction import redact
from workers.tools.wire_names import restore_names

# Options that configure the adapter; every other option is passed to the API as a parameter.
ADAPTER_OPTIONS = frozenset({"base_url", "api_key_env", "timeout_s"})
# A model call past this (or its ``timeout_s`` option) fails, and is not retried: a call that
# slow is a stuck call, and trying it again would only hold the agent longer.
DEFAULT_TIMEOUT_S = 120.0


def endpoint_of(config: ModelConfig, endpoints: Mapping[str, Endpoint]) -> Endpoint | None:
    """The worker's endpoint (of ``endpoints``, its settings' ``ORCHESTRATOR_ENDPOINTS``) that
    ``config`` names (None: the provider's own service). A name this worker does not declare,
    or declares for another provider, is an error: a key goes only where the worker's own
    configuration says."""
    if config.endpoint is None:
        return None
    endpoint = endpoints.get(config.endpoint)
    if endpoint is None or endpoint.provider != config.provider:
        raise ProviderError(
            f"{config.provider}: endpoint {config.endpoint!r} is not declared on this worker "
            "(ORCHESTRATOR_ENDPOINTS)",
            unbilled=True,
        )
    return endpoint


def api_key(config: ModelConfig, default_env: str, endpoints: Mapping[str, Endpoint]) -> str:
    """The API key, from the worker's environment only, in the variable the worker's endpoint
    names (else ``default_env``); never a name a run chose."""
    endpoint = endpoint_of(config, endpoints)
    name = endpoint.api_key_env if endpoint and endpoint.api_key_env else default_env
    key = os.environ.get(name)
    if not key:
        raise ProviderError(
            f"{config.provider}: set {name} in the worker's environment", unbilled=True
        )
    return key


def api_params(config: ModelConfig) -> tuple[dict[str, Any], str | None]:
    """The options passed through to the API (temperature, top_p, ...), and the thinking
    level, which each surface spells its own way. Options that would rewrite the request or
    its output limit (refused at submit) are dropped, should one slip past validation, and so
    is the output schema the worker sets (each surface asks for it in its own way:
    ``workers/providers/output_formats.py``)."""
    dropped = ADAPTER_OPTIONS | REQUEST_OPTIONS | OUTPUT_LIMIT_OPTIONS | WORKER_SET_OPTIONS
    params = {k: v for k, v in config.options.items() if k not in dropped}
    return params, params.pop("thinking", None)


# Hidden text a provider adds to a call that offers tools (Anthropic's tool-use system prompt
# is a few hundred tokens); more than any documents.
TOOL_PROMPT_TOKENS = 1024
# The tokens a chat format adds around the whole conversation.
CONVERSATION_TOKENS = 64


def body_token_bound(body: dict[str, Any]) -> int:
    """An upper bound of the input tokens of a request: its JSON size in bytes, plus what the
    provider adds. Every token of a byte-level BPE tokenizer (OpenAI's and Anthropic's) stands
    for at least one byte of text, so a text has no more tokens than bytes; the JSON around
    each message (``{"role":"user","content":""}``, 28 bytes) is more than the few tokens that
    mark a message in the model's format."""
    size = len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())
    return size + CONVERSATION_TOKENS + (TOOL_PROMPT_TOKENS if body.get("tools") else 0)


class BodySurface:
    """What the SDK-backed surfaces share: a call is a provider-native request body, built by
    ``request_body`` and sent by ``send`` (so that a wrapper can change the body between the
    two: the cache governor), and its input bound is its body's.

    Parameters:
        settings: the worker's settings: its endpoints (where a model is served, with which
            key) and its prices.
    """

    surface: str = ""
    """The API surface (``openai.chat``, ``anthropic.messages``...)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def complete(
        self,
        config: ModelConfig,
        messages: list[Message],
        cancel: CancelToken,
        tools: list[ToolInfo],
    ) -> ModelResponse:
        """Build the call's request and send it."""
        response = self.send(config, self.request_body(config, messages, tools), cancel)
        return restore_names(response, tools)

    def send(self, config: ModelConfig, body: dict[str, Any], cancel: CancelToken) -> ModelResponse:
        """Make the call ``body`` describes."""
        raise NotImplementedError

    def request_body(
        self, config: ModelConfig, messages: list[Message], tools: list[ToolInfo]
    ) -> dict[str, Any]:
        """The provider-native request for this call."""
        raise NotImplementedError

    def input_token_bound(
        self, config: ModelConfig, messages: list[Message], tools: list[ToolInfo]
    ) -> int:
        """At least the input tokens the call will be billed for (see ``body_token_bound``)."""
        return body_token_bound(self.request_body(config, messages, tools))


T = TypeVar("T")


def sdk_call(
    surface: str,
    client: Any,
    request: Callable[[], Awaitable[T]],
    cancel: CancelToken,
    config: ModelConfig,
) -> T:
    """``request()`` through ``inflight.run`` within the call's time limit; an SDK error
    becomes a provider error redacted of ``client``'s key."""
    try:
        response = inflight.run(surface, request, cancel, call_timeout_s(config))
    except (Cancelled, ProviderError):
        raise
    except Exception as error:
        raise translate_error(error, surface, [client.api_key]) from None
    if isinstance(response, str):
        # The SDKs hand back the text of a 200 whose body is not JSON (a proxy's page).
        raise unexpected_response(surface, f"a body that is not JSON: {response}", client.api_key)
    return response


# The errors that reading a successful response can raise when it is not the documented shape
# (``choices: []``, a missing field): the SDKs build their objects without validating them.
SHAPE_ERRORS = (AttributeError, IndexError, KeyError, TypeError, ValueError)
S = TypeVar("S", bound=Callable[..., ModelResponse])


def unexpected_response(surface: str, what: str, key: str) -> RetryableProviderError:
    """A successful response that cannot be read: retried (a proxy or an overloaded server may
    answer so for a while), redacted, and charged at its reservation (it may have been
    billed)."""
    message = redact(f"{surface}: unexpected response: {what}", [key])
    return RetryableProviderError(message, unbilled=False)


def reads_response(default_key_env: str) -> Callable[[S], S]:
    """Make a surface's ``send`` end as an ``unexpected_response`` when reading its response
    fails on its shape, instead of raising a raw ``AttributeError`` or ``IndexError``."""

    def wrap(send: S) -> S:
        @functools.wraps(send)
        def reading(self: Any, config: ModelConfig, *args: Any, **kwargs: Any) -> ModelResponse:
            try:
                return send(self, config, *args, **kwargs)
            except SHAPE_ERRORS as error:
                what = f"{type(error).__name__}: {error}"
                key = _known_key(config, default_key_env, self.settings.endpoints)
                raise unexpected_response(self.surface, what, key) from None

        return reading  # type: ignore[return-value]

    return wrap


def _known_key(config: ModelConfig, default_env: str, endpoints: Mapping[str, Endpoint]) -> str:
    try:
        return api_key(config, default_env, endpoints)
    except ProviderError:
        return ""


def request_digest(body: dict[str, Any]) -> str:
    """sha256 of the provider-native request body, canonically serialized."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def priced(usage: Usage, config: ModelConfig, prices: Mapping[str, Price]) -> Usage:
    """``usage`` with its cost at ``prices`` (the settings' overrides) else genai-prices' (see
    ``orchestrator.prices``); 0 when no price is known for the model, which
    ``prices.price_known`` tells apart from a free call."""
    cost = call_cost(config, usage, overrides=prices)
    usage.cost_usd = 0.0 if cost is None else cost
    return usage


def translate_error(error: Exception, surface: str, secrets: Iterable[str] = ()) -> ProviderError:
    """An SDK exception as a provider error: retryable for 429, 5xx, timeouts, connections.
    Its text is redacted of ``secrets`` (the key used for the call) and of anything shaped
    like a credential, since upstream bodies may echo the request's headers."""
    status = getattr(error, "status_code", None)
    response = getattr(error, "response", None)
    retry_after = retry_wait_s(response.headers if response is not None else None)
    message = redact(f"{surface}: {type(error).__name__}: {error}", secrets)
    connection_failure = type(error).__name__ in ("APIConnectionError", "APITimeoutError")
    # An HTTP error status is the provider's answer instead of a completion: nothing billed.
    answered = isinstance(status, int)
    if status == 429 or (isinstance(status, int) and status >= 500) or connection_failure:
        limited = status == 429
        return RetryableProviderError(message, retry_after, unbilled=answered, rate_limited=limited)
    return ProviderError(message, unbilled=answered, status=status if answered else None)


def openai_client(config: ModelConfig, endpoints: Mapping[str, Endpoint]) -> Any:
    """This thread's async OpenAI SDK client for ``config`` (its own retries off: ours apply),
    for calls through ``inflight.run`` in this thread."""
    settings = _client_settings(config, "OPENAI_API_KEY", endpoints)
    return thread_client(("openai", *settings), lambda: _openai_client(*settings))


def anthropic_client(config: ModelConfig, endpoints: Mapping[str, Endpoint]) -> Any:
    """This thread's async Anthropic SDK client for ``config`` (its own retries off: ours
    apply), for calls through ``inflight.run`` in this thread."""
    settings = _client_settings(config, "ANTHROPIC_API_KEY", endpoints)
    return thread_client(("anthropic", *settings), lambda: _anthropic_client(*settings))


def call_timeout_s(config: ModelConfig) -> float:
    """The time limit of one model call: the ``timeout_s`` option, else 120 s."""
    return float(config.options.get("timeout_s", DEFAULT_TIMEOUT_S))


def _client_settings(
    config: ModelConfig, key_env: str, endpoints: Mapping[str, Endpoint]
) -> tuple[str | None, str, float]:
    # The SDK applies the limit to each connect, write and read; those start after the
    # whole call's limit in ``inflight.run``, which therefore always fires first.
    timeout_s = call_timeout_s(config)
    endpoint = endpoint_of(config, endpoints)
    return endpoint.base_url if endpoint else None, api_key(config, key_env, endpoints), timeout_s


def _openai_client(base_url: str | None, key: str, timeout_s: float) -> Any:
    import openai

    return openai.AsyncOpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=timeout_s)


def _anthropic_client(base_url: str | None, key: str, timeout_s: float) -> Any:
    import anthropic

    return anthropic.AsyncAnthropic(
        api_key=key, base_url=base_url, max_retries=0, timeout=timeout_s
    )
