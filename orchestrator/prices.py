"""What a model call costs: the price list maintained in the ``genai-prices`` package, with
``ORCHESTRATOR_PRICES`` overriding it per ``provider:model``.

Providers change prices, add models and add price tiers often, so a table kept by hand here
would soon be wrong. ``genai-prices`` is maintained for exactly this; we read the snapshot
bundled with the installed version (never fetched at run time), so upgrading the package
updates the prices. An ``ORCHESTRATOR_PRICES`` entry wins over it: for a model the package does
not list (a fine-tune, a model served at an endpoint of your own) or for a negotiated price.
The overrides are passed in (``overrides=settings.prices``): a function here never reads the
environment itself.

Token counts arrive as each provider reports them (see ``Usage``): OpenAI counts cached reads
inside ``input_tokens``, while Anthropic reports cache reads and writes beside it. Here both
become one shape, as genai-prices counts them: all of the prompt's tokens, and how many of
them were cache reads and cache writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import TYPE_CHECKING

from orchestrator.config.settings import Price
from orchestrator.models import ModelConfig, Usage

if TYPE_CHECKING:
    from genai_prices.types import ModelPrice

# genai-prices is imported where a listed price is looked up, not here: its import (the
# package, its price snapshot and httpx) costs about 0.3 s of CPU, which the CLI, clients and
# workers that only run scripted models or overridden prices never need.

GENAI_PROVIDER_IDS: dict[str, str] = {
    "openai": "openai",
    "openai_responses": "openai",
    "anthropic": "anthropic",
}
"""The genai-prices provider id of each of our providers (``scripted`` prices itself)."""

PRICE_CONTEXT_OPTIONS = ("service_tier", "speed")
"""Model options that select a genai-prices price variant: OpenAI's ``service_tier`` (flex,
priority) and Anthropic's ``speed`` (fast mode). They go to the API as they are, so the price
follows what was asked for."""

_PER_MILLION = 1_000_000
# The genai-prices keys our token counts are billed under: the prompt's uncached tokens, cache
# reads and cache writes, then output (USD per million tokens, each possibly tiered).
_PROMPT_PRICE_KEYS = ("input_mtok", "cache_read_mtok", "cache_write_mtok")
_OUTPUT_PRICE_KEYS = ("output_mtok",)
# A price per thousand requests: genai-prices bills one request for every call.
_REQUEST_PRICE_KEY = "requests_kcount"


def price_known(config: ModelConfig, *, overrides: Mapping[str, Price] | None = None) -> bool:
    """True when calls of ``config``'s model have a price: always for ``scripted`` (free
    unless its ``cost_per_1k_tokens`` option sets one), else an entry in ``overrides``
    (the settings' ``prices``, ``ORCHESTRATOR_PRICES``; none when omitted) or a model
    genai-prices lists for the provider."""
    return config.provider == "scripted" or _pricing(config, overrides) is not None


def call_cost(
    config: ModelConfig, usage: Usage, *, overrides: Mapping[str, Price] | None = None
) -> float | None:
    """USD of one call's reported ``usage``; None when no price is known for the model (in
    ``overrides``, the settings' ``prices``, or genai-prices' list).

    Cache reads and writes are billed as the provider bills them: at the cached-input and
    cache-write prices, on top of the uncached input, with the price tier that the whole
    prompt falls into. ``scripted`` costs ``(input + output tokens) * cost_per_1k_tokens /
    1000`` (0 without the option).
    """
    if config.provider == "scripted":
        return (usage.input_tokens + usage.output_tokens) * _scripted_price(config) / 1000
    pricing = _pricing(config, overrides)
    if pricing is None:
        return None
    tokens = _tokens(usage)
    if isinstance(pricing, Price):
        return float(_override_cost(pricing, tokens))
    import genai_prices

    counted = genai_prices.Usage(
        input_tokens=tokens.prompt,
        cache_read_tokens=tokens.cache_read,
        cache_write_tokens=tokens.cache_write,
        output_tokens=tokens.output,
    )
    return float(pricing.calc_price(counted)["total_price"])


def cost_bound(
    config: ModelConfig,
    input_tokens: int,
    output_tokens: int,
    *,
    overrides: Mapping[str, Price] | None = None,
) -> float | None:
    """The most that a call with at most ``input_tokens`` prompt tokens (all of them, cached
    or not: for Anthropic, input plus cache reads plus cache writes) and at most
    ``output_tokens`` output tokens can cost, whatever part of the prompt turns out to be
    cache reads or writes and whatever price tier applies; None when no price is known.

    Never below ``call_cost`` of such a call: every prompt token is counted at the highest
    of the input, cache-read and cache-write prices over all tiers, and every output token at
    the highest output price, computed exactly so that rounding cannot break this. Prices
    are those in force now, as for ``call_cost``.
    """
    if input_tokens < 0 or output_tokens < 0:
        raise ValueError("input_tokens and output_tokens must not be negative")
    if config.provider == "scripted":
        return (input_tokens + output_tokens) * _scripted_price(config) / 1000
    pricing = _pricing(config, overrides)
    if pricing is None:
        return None
    if isinstance(pricing, Price):
        prompt_price = max(map(Fraction, (pricing.input, *_cache_prices(pricing))))
        output_price = Fraction(pricing.output)
        per_call = Fraction(0)
    else:
        prompt_price = _highest(pricing, _PROMPT_PRICE_KEYS)
        output_price = _highest(pricing, _OUTPUT_PRICE_KEYS)
        per_call = _highest(pricing, (_REQUEST_PRICE_KEY,)) / 1000
    tokens_cost = (prompt_price * input_tokens + output_price * output_tokens) / _PER_MILLION
    return float(tokens_cost + per_call)


@dataclass(frozen=True)
class _Tokens:
    """One call's tokens as genai-prices counts them: ``prompt`` is every input token, of
    which ``cache_read`` were read from and ``cache_write`` written to the provider's cache."""

    prompt: int
    cache_read: int
    cache_write: int
    output: int


def _tokens(usage: Usage) -> _Tokens:
    # Each provider fills only its own cache fields, so one sum serves both: OpenAI's
    # cached_tokens are already part of input_tokens, Anthropic's reads and writes are not.
    # A server reporting more cached than input tokens is believed about the cached ones,
    # rather than billing a negative number of uncached tokens.
    inside = max(usage.input_tokens, usage.cached_tokens)
    return _Tokens(
        prompt=inside + usage.cache_read_input_tokens + usage.cache_creation_input_tokens,
        cache_read=usage.cached_tokens + usage.cache_read_input_tokens,
        cache_write=usage.cache_creation_input_tokens,
        output=usage.output_tokens,
    )


def _pricing(
    config: ModelConfig, overrides: Mapping[str, Price] | None
) -> Price | ModelPrice | None:
    """The override of ``config``'s model, else genai-prices' price of it, else None."""
    override = (overrides or {}).get(f"{config.provider}:{config.model}")
    return override if override is not None else _listed_price(config)


def _listed_price(config: ModelConfig) -> ModelPrice | None:
    """genai-prices' price of the model now, in the variant its options ask for; None when the
    package does not list the model for the provider."""
    provider_id = GENAI_PROVIDER_IDS.get(config.provider)
    if provider_id is None:
        return None
    from genai_prices import data_snapshot

    try:
        # genai-prices' own matching, which knows dated and aliased names (gpt-4o-2024-08-06).
        _, model = data_snapshot.get_snapshot().find_provider_model(
            config.model, None, provider_id, None
        )
    except LookupError:
        return None
    context = {
        key: value
        for key in PRICE_CONTEXT_OPTIONS
        if isinstance(value := config.options.get(key), str)
    }
    return model.get_prices(datetime.now(UTC), context or None)


def _highest(price: ModelPrice, keys: tuple[str, ...]) -> Fraction:
    """The highest of the prices under ``keys``, over every tier (0 when none is set)."""
    from genai_prices.types import TieredPrices

    found = [Fraction(0)]
    for key in keys:
        value = getattr(price, key)
        if isinstance(value, TieredPrices):
            found.extend(Fraction(tier.price) for tier in value.tiers)
            found.append(Fraction(value.base))
        elif value is not None:
            found.append(Fraction(value))
    return max(found)


def _cache_prices(price: Price) -> tuple[float, float]:
    """Cached-input and cache-write prices; each falls back to the input price when unset."""
    cached = price.input if price.cached_input is None else price.cached_input
    write = price.input if price.cache_write is None else price.cache_write
    return cached, write


def _override_cost(price: Price, tokens: _Tokens) -> Fraction:
    # Exact arithmetic, like cost_bound's, so that the bound is never a rounding below it.
    cached, write = _cache_prices(price)
    uncached = tokens.prompt - tokens.cache_read - tokens.cache_write
    return (
        uncached * Fraction(price.input)
        + tokens.cache_read * Fraction(cached)
        + tokens.cache_write * Fraction(write)
        + tokens.output * Fraction(price.output)
    ) / _PER_MILLION


def _scripted_price(config: ModelConfig) -> float:
    return float(config.options.get("cost_per_1k_tokens", 0.0))
