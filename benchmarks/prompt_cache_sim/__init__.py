"""A simulator of provider prompt caching: what a request reads from and writes to the cache,
and what it costs. Pure Python, no I/O, no clock: the caller gives every time.

A prompt is a sequence of ``Block``s whose token counts the caller gives (the simulator does
not tokenize). A cache entry is a prefix of blocks ending at a block boundary, identified by a
hash chained over the blocks' ``content_hash`` and the model. Calls to one cache must come in
non-decreasing ``now``.

- ``AnthropicCache``: explicit ``cache_control`` breakpoints (Anthropic Messages).
- ``OpenAICache``: automatic caching routed by the prompt's start and ``prompt_cache_key``
  (OpenAI Chat Completions and Responses).
- ``cost``: a usage's price in units of the input-token price.
"""

from benchmarks.prompt_cache_sim.anthropic_cache import (
    ANTHROPIC_TTL_S,
    AnthropicCache,
    AnthropicUsage,
    CacheControlError,
    TooManyBreakpoints,
)
from benchmarks.prompt_cache_sim.core import Block, prefix_keys
from benchmarks.prompt_cache_sim.openai_cache import OPENAI_RETENTION_S, OpenAICache, OpenAIUsage
from benchmarks.prompt_cache_sim.pricing import DEFAULT_PRICES, Prices, cost

__all__ = [
    "ANTHROPIC_TTL_S",
    "DEFAULT_PRICES",
    "OPENAI_RETENTION_S",
    "AnthropicCache",
    "AnthropicUsage",
    "Block",
    "CacheControlError",
    "OpenAICache",
    "OpenAIUsage",
    "Prices",
    "TooManyBreakpoints",
    "cost",
    "prefix_keys",
]
