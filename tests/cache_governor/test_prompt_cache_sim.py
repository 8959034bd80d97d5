"""The prompt-cache simulator on hand-computed cases: every number below is worked out from
the provider rules in ``benchmarks/prompt_cache_sim``, never measured."""

from __future__ import annotations

import pytest

from benchmarks.prompt_cache_sim import (
    AnthropicCache,
    AnthropicUsage,
    Block,
    CacheControlError,
    OpenAICache,
    OpenAIUsage,
    Prices,
    TooManyBreakpoints,
    cost,
)


def blocks(*tokens: int, tag: str = "b") -> list[Block]:
    return [Block(f"{tag}{i}", n) for i, n in enumerate(tokens)]


def usage(
    input_tokens: int, read: int = 0, five: int = 0, hour: int = 0
) -> tuple[int, int, int, int, int]:
    return (input_tokens, read, five + hour, five, hour)


def counts(used: AnthropicUsage) -> tuple[int, int, int, int, int]:
    return (
        used.input_tokens,
        used.cache_read_input_tokens,
        used.cache_creation_input_tokens,
        used.ephemeral_5m_input_tokens,
        used.ephemeral_1h_input_tokens,
    )


PROMPT = blocks(2000, 500)  # a system block to cache, then a user message


def test_write_then_read_within_ttl() -> None:
    cache = AnthropicCache()
    assert counts(cache.request(PROMPT, {0: "5m"}, now=0)) == usage(500, five=2000)
    assert counts(cache.request(PROMPT, {0: "5m"}, now=100)) == usage(500, read=2000)


def test_an_entry_expires_at_its_ttl() -> None:
    cache = AnthropicCache()
    cache.request(PROMPT, {0: "5m"}, now=0)
    assert counts(cache.request(PROMPT, {0: "5m"}, now=300)) == usage(500, five=2000)


def test_a_read_renews_the_entry() -> None:
    cache = AnthropicCache()
    cache.request(PROMPT, {0: "5m"}, now=0)
    cache.request(PROMPT, {0: "5m"}, now=200)  # read: now expires at 500
    assert counts(cache.request(PROMPT, {0: "5m"}, now=450)) == usage(500, read=2000)
    assert counts(cache.request(PROMPT, {0: "5m"}, now=750)) == usage(500, five=2000)


def test_a_breakpoint_looks_back_19_blocks_not_20() -> None:
    prompt = blocks(*[100] * 31)  # block i ends at 100 * (i + 1) tokens
    near, far = AnthropicCache(), AnthropicCache()
    for cache in (near, far):
        cache.request(prompt, {10: "5m"}, now=0)  # writes the 1100-token prefix
    hit = near.request(prompt, {29: "5m"}, now=1)
    assert (hit.read_at, hit.written) == (10, (29,))
    assert counts(hit) == usage(100, read=1100, five=3000 - 1100)
    miss = far.request(prompt, {30: "5m"}, now=1)
    assert (miss.read_at, miss.written) == (None, (30,))
    assert counts(miss) == usage(0, five=3100)


def test_the_latest_hit_over_all_breakpoints_is_read() -> None:
    prompt = blocks(1200, 300, 300, 300)
    cache = AnthropicCache()
    cache.request(prompt, {0: "5m", 2: "5m"}, now=0)
    used = cache.request(prompt, {0: "5m", 3: "5m"}, now=1)
    assert (used.read_at, used.written) == (2, (3,))
    assert counts(used) == usage(0, read=1800, five=300)


def test_below_the_minimum_nothing_is_written() -> None:
    cache = AnthropicCache(min_tokens=1024)
    short = blocks(1023, 500)
    assert counts(cache.request(short, {0: "5m"}, now=0)) == usage(1523)
    assert counts(cache.request(short, {0: "5m"}, now=1)) == usage(1523)
    # The minimum is on the prefix up to the breakpoint, not on the block.
    assert counts(cache.request(short, {1: "5m"}, now=2)) == usage(0, five=1523)
    exact = blocks(1024, 10, tag="x")
    assert counts(cache.request(exact, {0: "5m"}, now=3)) == usage(10, five=1024)


def test_a_fifth_breakpoint_is_refused_and_changes_nothing() -> None:
    cache = AnthropicCache()
    prompt = blocks(*[1100] * 5)
    with pytest.raises(TooManyBreakpoints, match="maximum of 4"):
        cache.request(prompt, dict.fromkeys(range(5), "5m"), now=0)
    assert counts(cache.request(prompt, {0: "5m"}, now=1)) == usage(4400, five=1100)


def test_a_longer_ttl_after_a_shorter_one_is_refused() -> None:
    cache = AnthropicCache()
    with pytest.raises(CacheControlError):
        cache.request(PROMPT, {0: "5m", 1: "1h"}, now=0)
    assert counts(cache.request(PROMPT, {0: "1h", 1: "5m"}, now=0)) == usage(0, five=500, hour=2000)


def test_a_request_started_before_an_entry_is_available_misses_it() -> None:
    cache = AnthropicCache()
    cache.request(PROMPT, {0: "5m"}, now=0, available_at=10)
    assert counts(cache.request(PROMPT, {0: "5m"}, now=5, available_at=15)) == usage(500, five=2000)
    assert counts(cache.request(PROMPT, {0: "5m"}, now=10)) == usage(500, read=2000)


def test_creation_is_split_by_the_ttl_ending_each_segment() -> None:
    prompt = blocks(1500, 1000, 800, 200)  # tools, system, two messages
    cache = AnthropicCache()
    first = cache.request(prompt, {0: "1h", 1: "1h", 2: "5m"}, now=0)
    assert counts(first) == usage(200, five=800, hour=2500)
    assert cost(first) == 200 + 2500 * 2 + 800 * 1.25
    # At 400 s the 5-minute entry is gone and the 1-hour ones are not: reads 2500 tokens,
    # writes the rest up to block 3 at 5 minutes.
    later = cache.request(prompt, {1: "1h", 3: "5m"}, now=400)
    assert (later.read_at, later.written) == (1, (3,))
    assert counts(later) == usage(0, read=2500, five=1000)
    assert cost(later) == pytest.approx(2500 * 0.1 + 1000 * 1.25)


def test_entries_are_per_model_and_time_must_not_go_back() -> None:
    cache = AnthropicCache()
    cache.request(PROMPT, {0: "5m"}, now=0, model="a")
    assert counts(cache.request(PROMPT, {0: "5m"}, now=1, model="b")) == usage(500, five=2000)
    with pytest.raises(ValueError, match="went back"):
        cache.request(PROMPT, {0: "5m"}, now=0.5)


def chunks(count: int, tag: str = "c") -> list[Block]:
    """A prompt cut in 128-token blocks."""
    return [Block(f"{tag}{i}", 128) for i in range(count)]


def test_openai_reads_a_shared_prefix_with_the_same_key_only() -> None:
    cache = OpenAICache()
    prompt = chunks(10)  # 1280 tokens
    assert cache.request(prompt, "k", None, now=0) == OpenAIUsage(1280, 0)
    assert cache.request(prompt, "k", None, now=1) == OpenAIUsage(1280, 1280)
    assert cache.request(prompt, "other", None, now=2) == OpenAIUsage(1280, 0)
    assert cache.request(prompt, None, None, now=3) == OpenAIUsage(1280, 0)
    diverging = [*chunks(9), Block("new", 128)]  # shares 1152 tokens
    assert cache.request(diverging, "k", None, now=4) == OpenAIUsage(1280, 1152)


def test_openai_rounds_to_1024_plus_steps_of_128() -> None:
    cache = OpenAICache()
    assert [cache.cached_length(n) for n in (1023, 1024, 1151, 1152, 1350)] == [
        0,
        1024,
        1024,
        1152,
        1280,
    ]
    prompt = [Block("a", 1000), Block("b", 350), Block("c", 40)]
    cache.request(prompt, "k", None, now=0)
    # Shares blocks a and b (1350 tokens): 1024 + 2 * 128 cached, inside prompt_tokens.
    changed = [*prompt[:2], Block("d", 40)]
    used = cache.request(changed, "k", None, now=1)
    assert used == OpenAIUsage(1390, 1280)
    assert cost(used, Prices(read=0.5)) == 110 + 1280 * 0.5
    assert cache.request([Block("a", 1000), Block("e", 5)], "k", None, now=2).cached_tokens == 0


def test_openai_retention_counts_from_the_last_use() -> None:
    cache = OpenAICache()
    prompt = chunks(9)
    cache.request(prompt, "k", "in_memory", now=0)
    assert cache.request(prompt, "k", "in_memory", now=299).cached_tokens == 1152
    assert cache.request(prompt, "k", "in_memory", now=598).cached_tokens == 1152
    assert cache.request(prompt, "k", "in_memory", now=898).cached_tokens == 0
    long = chunks(9, tag="long")
    cache.request(long, "k", "24h", now=1000)
    assert cache.request(long, "k", None, now=1000 + 86_399).cached_tokens == 1152


def test_openai_concurrent_requests_miss_until_available() -> None:
    cache = OpenAICache()
    prompt = chunks(9)
    cache.request(prompt, "k", None, now=0, available_at=10)
    assert cache.request(prompt, "k", None, now=5, available_at=12).cached_tokens == 0
    assert cache.request(prompt, "k", None, now=10).cached_tokens == 1152


def test_openai_a_busy_routing_bucket_overflows() -> None:
    cache = OpenAICache(key_rpm=15)
    prompt = chunks(9)
    for second in range(15):
        cache.request(prompt, "k", None, now=second)
    # The bucket is the key plus the first 256 tokens: a prompt diverging after them shares it.
    late = [*chunks(2), *chunks(7, tag="late")]
    assert cache.request(late, "k", None, now=15) == OpenAIUsage(1152, 0, overflowed=True)
    assert cache.request(prompt, "k", None, now=16) == OpenAIUsage(1152, 0, overflowed=True)
    assert cache.request(prompt, "other", None, now=17) == OpenAIUsage(1152, 0)
    # The request at 0 s leaves the rolling minute at 60 s; the overflowed ones never counted.
    assert cache.request(prompt, "k", None, now=60) == OpenAIUsage(1152, 1152)
    assert cache.request(prompt, "k", None, now=60.5).overflowed


def test_openai_refuses_an_unknown_retention() -> None:
    with pytest.raises(ValueError, match="prompt_cache_retention"):
        OpenAICache().request(chunks(1), "k", "forever", now=0)
