"""The numbers the cache governor works with, all in one place and all configurable.

Defaults follow the providers' documentation (Anthropic Messages prompt caching, OpenAI prompt
caching) and the Adaptive Cache Governor's economics. Workers and learners read them from
``ORCHESTRATOR_CACHE_GOVERNOR`` (JSON, any subset of the fields), e.g.
``{"min_tokens": {"claude-haiku-3": 2048}, "window": 200}``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Ttl = Literal["5m", "1h"]

DEFAULT_MIN_TOKENS = {
    # Anthropic's minimum cacheable prompt lengths by model family (longest prefix wins).
    "claude-opus-4-5": 4096,
    "claude-opus-4": 1024,
    "claude-sonnet": 1024,
    "claude-3-7-sonnet": 1024,
    "claude-3-5-sonnet": 1024,
    "claude-haiku-4-5": 4096,
    "claude-3-5-haiku": 2048,
    "claude-3-haiku": 2048,
    "claude-3-opus": 1024,
}

WRITE_MULTIPLIERS: dict[Ttl, float] = {"5m": 1.25, "1h": 2.0}
TTL_S: dict[Ttl, float] = {"5m": 300.0, "1h": 3600.0}

DEFAULT_RETENTION_MODELS = ("gpt-5", "gpt-4.1")
"""Model name prefixes that take ``prompt_cache_retention="24h"``."""


class CacheGovernorConfig(BaseModel):
    """How the cache governor learns and plans.

    Parameters:
        read_multiplier: price of a cached input token read, relative to the input price.
        write_multipliers: price of a token written to the cache, by TTL.
        ttl_s: how long an entry lives, by TTL (refreshed on every read).
        stable: a block position whose score reaches this is stable.
        semi_stable: below this a position is volatile: no breakpoint learned from other
            calls at or after it.
        full_confidence: observations for full confidence (fewer scale it down linearly).
        min_observations: observations before any plan is made.
        window: the observations a profile keeps, newest last.
        positions: block positions whose stability is tracked.
        max_profiles: learning keys kept per agent (the most recently seen).
        max_breakpoints: explicit cache breakpoints one request may carry.
        lookback: how many blocks back from a breakpoint the provider looks for an entry.
        min_tokens: minimum cacheable prefix by model name prefix (longest match wins).
        default_min_tokens: for a model none of ``min_tokens`` matches.
        bytes_per_token: the estimate of a block's tokens is its bytes over this.
        openai_min_tokens: OpenAI caches prompts of at least this many tokens.
        key_rpm: requests per minute one ``prompt_cache_key`` serves well; above it the key
            is spread over several.
        retention_models: OpenAI model prefixes that take ``prompt_cache_retention="24h"``,
            chosen when calls come further apart than ``in_memory_retention_s``.
        in_memory_retention_s: how long OpenAI keeps an idle prefix by default.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    read_multiplier: float = Field(default=0.1, ge=0, le=1)
    write_multipliers: dict[Ttl, float] = Field(default_factory=lambda: dict(WRITE_MULTIPLIERS))
    ttl_s: dict[Ttl, float] = Field(default_factory=lambda: dict(TTL_S))
    stable: float = Field(default=0.95, gt=0, le=1)
    semi_stable: float = Field(default=0.5, gt=0, le=1)
    full_confidence: int = Field(default=20, ge=1)
    min_observations: int = Field(default=3, ge=2)
    window: int = Field(default=100, ge=2)
    positions: int = Field(default=64, ge=1)
    max_profiles: int = Field(default=16, ge=1)
    max_breakpoints: int = Field(default=4, ge=1)
    lookback: int = Field(default=20, ge=1)
    min_tokens: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_MIN_TOKENS))
    default_min_tokens: int = Field(default=1024, ge=1)
    bytes_per_token: float = Field(default=4.0, gt=0)
    openai_min_tokens: int = Field(default=1024, ge=1)
    key_rpm: float = Field(default=15.0, gt=0)
    retention_models: tuple[str, ...] = DEFAULT_RETENTION_MODELS
    in_memory_retention_s: float = Field(default=300.0, gt=0)

    def model_min_tokens(self, model: str) -> int:
        """The documented minimum cacheable length of ``model`` (longest prefix match)."""
        matches = [prefix for prefix in self.min_tokens if model.startswith(prefix)]
        if not matches:
            return self.default_min_tokens
        return self.min_tokens[max(matches, key=len)]

    def takes_retention(self, model: str) -> bool:
        return any(model.startswith(prefix) for prefix in self.retention_models)
