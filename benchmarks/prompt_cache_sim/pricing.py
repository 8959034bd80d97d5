"""What a request costs, in units of the model's input-token price."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.prompt_cache_sim.anthropic_cache import AnthropicUsage
from benchmarks.prompt_cache_sim.openai_cache import OpenAIUsage


@dataclass(frozen=True)
class Prices:
    """Token prices as multiples of the input-token price.

    Parameters:
        write_5m: a token written to a 5-minute Anthropic entry (1.25).
        write_1h: a token written to a 1-hour Anthropic entry (2.0).
        read: a token read from the cache (0.1 for Anthropic and recent OpenAI models; some
            OpenAI models bill 0.25 or 0.5).
        output: an output token (5.0: Claude Sonnet's $15 against $3 input).
    """

    write_5m: float = 1.25
    write_1h: float = 2.0
    read: float = 0.1
    output: float = 5.0


DEFAULT_PRICES = Prices()


def cost(
    usage: AnthropicUsage | OpenAIUsage, prices: Prices = DEFAULT_PRICES, output_tokens: int = 0
) -> float:
    """The cost of a request's prompt (plus ``output_tokens`` at ``prices.output``) in
    input-token prices. OpenAI's cached tokens are inside ``prompt_tokens`` and carry no
    write premium."""
    if isinstance(usage, OpenAIUsage):
        prompt = usage.prompt_tokens - usage.cached_tokens + usage.cached_tokens * prices.read
    else:
        prompt = (
            usage.input_tokens
            + usage.ephemeral_5m_input_tokens * prices.write_5m
            + usage.ephemeral_1h_input_tokens * prices.write_1h
            + usage.cache_read_input_tokens * prices.read
        )
    return prompt + output_tokens * prices.output
