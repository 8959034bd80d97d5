"""Anthropic Messages prompt caching: explicit ``cache_control`` breakpoints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate

from benchmarks.prompt_cache_sim.core import Block, PrefixStore, prefix_keys

# Anthropic's two cache lifetimes, in seconds.
ANTHROPIC_TTL_S: Mapping[str, float] = {"5m": 300.0, "1h": 3600.0}


class CacheControlError(ValueError):
    """Breakpoints the Anthropic API refuses (HTTP 400 ``invalid_request_error``)."""


class TooManyBreakpoints(CacheControlError):
    """More breakpoints than the API allows in one request."""


@dataclass(frozen=True)
class AnthropicUsage:
    """What the Messages API reports for a request's prompt: ``input_tokens`` (those after
    the last cache point), ``cache_read_input_tokens`` and ``cache_creation_input_tokens`` add
    up to the prompt's tokens; the two ``ephemeral_*`` counts split the creation by TTL.
    ``read_at`` (the block index read up to, None for none) and ``written`` (the block
    indices of the entries written) tell why."""

    input_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int
    ephemeral_5m_input_tokens: int
    ephemeral_1h_input_tokens: int
    read_at: int | None = None
    written: tuple[int, ...] = ()


class AnthropicCache:
    """Anthropic's prompt cache for one organization.

    Parameters:
        min_tokens: the model's minimum cacheable prefix (1024 for Sonnet; 2048 or 4096 for
            some models); a breakpoint on a shorter prefix writes nothing, without error.
        lookback: how many block boundaries a breakpoint checks for an entry, itself
            included (20: a hit 19 blocks before the breakpoint is read, 20 is not).
        max_breakpoints: breakpoints allowed in one request (4).
        ttl_s: seconds of each TTL (``ANTHROPIC_TTL_S``).
    """

    def __init__(
        self,
        min_tokens: int = 1024,
        lookback: int = 20,
        max_breakpoints: int = 4,
        ttl_s: Mapping[str, float] = ANTHROPIC_TTL_S,
    ) -> None:
        self.min_tokens = min_tokens
        self.lookback = lookback
        self.max_breakpoints = max_breakpoints
        self.ttl_s = dict(ttl_s)
        self._store = PrefixStore()

    def request(
        self,
        blocks: Sequence[Block],
        breakpoints: Mapping[int, str],
        now: float,
        available_at: float | None = None,
        model: str = "",
    ) -> AnthropicUsage:
        """Process one request whose ``breakpoints`` map block indices to TTLs (``"5m"`` or
        ``"1h"``). The read point is the largest boundary within ``lookback`` of some
        breakpoint holding a live entry; its entry's expiry is refreshed. Each breakpoint
        past it whose prefix reaches ``min_tokens`` writes an entry, readable from
        ``available_at`` (default ``now``: e.g. the request's end, so that requests started
        before it do not read it). Raises ``CacheControlError`` for breakpoints the API
        refuses (``TooManyBreakpoints`` past ``max_breakpoints``)."""
        self._check(blocks, breakpoints)
        self._store.advance(now)
        keys = prefix_keys(model, blocks)
        ends = list(accumulate(block.tokens for block in blocks))
        read_at: int | None = None
        for point in breakpoints:
            for i in range(point, max(point - self.lookback, -1), -1):
                if self._store.live(keys[i], now) is not None:
                    read_at = i if read_at is None else max(read_at, i)
                    break  # the largest boundary of this breakpoint's lookback
        read = 0
        if read_at is not None:
            hit = self._store.entries[keys[read_at]]
            hit.expires_at = max(hit.expires_at, now + self.ttl_s[hit.ttl])
            read = ends[read_at]
        start = read
        created = {"5m": 0, "1h": 0}
        written: list[int] = []
        for point in sorted(breakpoints):
            ttl = breakpoints[point]
            if (read_at is not None and point <= read_at) or ends[point] < self.min_tokens:
                continue
            # The segment since the previous cache point is billed at the TTL that ends it.
            created[ttl] += ends[point] - start
            start = ends[point]
            written.append(point)
            ready = now if available_at is None else available_at
            self._store.write(keys[point], now, ready, ttl, self.ttl_s[ttl])
        total = ends[-1] if ends else 0
        return AnthropicUsage(
            input_tokens=total - start,
            cache_read_input_tokens=read,
            cache_creation_input_tokens=start - read,
            ephemeral_5m_input_tokens=created["5m"],
            ephemeral_1h_input_tokens=created["1h"],
            read_at=read_at,
            written=tuple(written),
        )

    def _check(self, blocks: Sequence[Block], breakpoints: Mapping[int, str]) -> None:
        if len(breakpoints) > self.max_breakpoints:
            raise TooManyBreakpoints(
                f"A maximum of {self.max_breakpoints} blocks with cache_control may be "
                f"provided. Found {len(breakpoints)}."
            )
        longest = float("inf")
        for point in sorted(breakpoints):
            ttl = breakpoints[point]
            if not 0 <= point < len(blocks):
                raise IndexError(f"breakpoint {point} is outside the {len(blocks)} blocks")
            if ttl not in self.ttl_s:
                raise CacheControlError(f"cache_control.ttl must be one of {list(self.ttl_s)}")
            # The API refuses a longer TTL after a shorter one in prompt order.
            if self.ttl_s[ttl] > longest:
                raise CacheControlError(
                    f"a cache_control ttl={ttl!r} block must not come after a shorter ttl"
                )
            longest = self.ttl_s[ttl]
