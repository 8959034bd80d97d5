"""Prices of model calls (interim: ORCHESTRATOR_PRICES and the scripted model's option only)."""

from __future__ import annotations

from orchestrator.models import ModelConfig, Usage
from orchestrator.settings import Price, get_settings


def _price(config: ModelConfig) -> Price | None:
    if config.provider == "scripted":
        per_1k = float(config.options.get("cost_per_1k_tokens", 0.0))
        return Price(input=per_1k * 1000, output=per_1k * 1000)
    return get_settings().prices.get(f"{config.provider}:{config.model}")


def price_known(config: ModelConfig) -> bool:
    """Whether calls of ``config`` have a known price."""
    return _price(config) is not None


def call_cost(config: ModelConfig, usage: Usage) -> float | None:
    """USD of one call's reported usage (None without a known price)."""
    price = _price(config)
    if price is None:
        return None
    cached_price = price.input if price.cached_input is None else price.cached_input
    write_price = price.input if price.cache_write is None else price.cache_write
    plain = usage.input_tokens - usage.cached_tokens
    per_token = (
        plain * price.input
        + (usage.cached_tokens + usage.cache_read_input_tokens) * cached_price
        + usage.cache_creation_input_tokens * write_price
        + usage.output_tokens * price.output
    )
    return per_token / 1_000_000


def cost_bound(config: ModelConfig, input_tokens: int, output_tokens: int) -> float | None:
    """The most a call of at most these many tokens can cost (None without a known price)."""
    price = _price(config)
    if price is None:
        return None
    per_input = max(price.input, price.cached_input or 0.0, price.cache_write or 0.0)
    return (input_tokens * per_input + output_tokens * price.output) / 1_000_000
