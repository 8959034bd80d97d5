"""Translators: a plan as the hints each surface takes, written into a copy of the request.

* Anthropic Messages: ``cache_control`` on the planned blocks (a string system prompt or
  message content becomes the one-text-block array form first, which the model reads the
  same).
* OpenAI Chat and Responses: ``prompt_cache_key``, stable per learning key and spread over
  several keys when the key's calls come faster than one key serves well (a conversation
  keeps its key), and ``prompt_cache_retention="24h"`` for the models that take it when calls
  come further apart than the default retention.
* Any other surface passes through untouched.
"""

from __future__ import annotations

import copy
import hashlib
import math
from typing import Any

from orchestrator.config.governor import CacheGovernorConfig, Ttl
from orchestrator.plans.cache_plans import CacheProfile
from workers.cache.prompt_ir import IRBlock


def count_breakpoints(value: Any) -> int:
    """The ``cache_control`` markers already in a request (the caller's, top level included)."""
    if isinstance(value, dict):
        return ("cache_control" in value) + sum(count_breakpoints(v) for v in value.values())
    if isinstance(value, list):
        return sum(count_breakpoints(item) for item in value)
    return 0


def caller_marks(body: dict[str, Any], blocks: list[IRBlock]) -> list[tuple[int, str]]:
    """The caller's own ``cache_control`` markers, in prompt order: the index of the block
    each is on (or inside) and its lifetime (``5m`` when it names none). A top-level marker
    (automatic mode) is on the last block, unless that block has its own."""
    marks: list[tuple[int, str]] = []
    for index, block in enumerate(blocks):
        value: Any = body
        for step in block.path:
            value = value[step]
        marks += [(index, ttl) for ttl in _lifetimes(value)]
    top = body.get("cache_control")
    if isinstance(top, dict) and blocks and not (marks and marks[-1][0] == len(blocks) - 1):
        marks.append((len(blocks) - 1, str(top.get("ttl", "5m"))))
    return marks


def _lifetimes(value: Any) -> list[str]:
    if isinstance(value, dict):
        marker = value.get("cache_control")
        own = [str(marker.get("ttl", "5m"))] if isinstance(marker, dict) else []
        return own + [
            ttl for key, v in value.items() if key != "cache_control" for ttl in _lifetimes(v)
        ]
    if isinstance(value, list):
        return [ttl for item in value for ttl in _lifetimes(item)]
    return []


def with_breakpoints(
    body: dict[str, Any], blocks: list[IRBlock], breakpoints: list[int], ttl: Ttl
) -> dict[str, Any]:
    """A copy of an Anthropic request with a ``cache_control`` on each planned block; a block
    the caller marked keeps the caller's marker."""
    marked = copy.deepcopy(body)
    for index in breakpoints:
        _mark(marked, blocks[index].path, {"type": "ephemeral", "ttl": ttl})
    return marked


def _mark(body: dict[str, Any], path: tuple[str | int, ...], hint: dict[str, str]) -> None:
    parent: Any = body
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    value = parent[last]
    if isinstance(value, str):  # the string form has nowhere to put a hint
        parent[last] = [{"type": "text", "text": value, "cache_control": hint}]
    else:
        value.setdefault("cache_control", hint)  # never another lifetime than the caller's


def shared_prefix_tokens(
    blocks: list[IRBlock], profile: CacheProfile, config: CacheGovernorConfig
) -> int:
    """Tokens of the request's leading blocks that other calls of the profile share."""
    total = 0
    for block, stat in zip(blocks, profile.positions, strict=False):
        if stat.hash != block.hash or stat.score < config.semi_stable:
            break
        total += block.tokens
    return total


def openai_hints(
    blocks: list[IRBlock],
    profile: CacheProfile,
    config: CacheGovernorConfig,
    key_seed: str,
    conversation: str,
) -> tuple[str, str | None] | None:
    """The ``prompt_cache_key`` and retention for an OpenAI request, or None when no prefix
    long enough to cache is shared with other calls or the conversation's next turn."""
    if profile.observations < config.min_observations:
        return None
    shared = shared_prefix_tokens(blocks, profile, config)
    continued = profile.continued_within.get("1h", 0.0) > 0
    whole = sum(block.tokens for block in blocks)
    if shared < config.openai_min_tokens and not (continued and whole >= config.openai_min_tokens):
        return None
    key = "ao-" + hashlib.sha256(key_seed.encode()).hexdigest()[:16]
    shards = max(1, math.ceil(profile.calls_per_minute / config.key_rpm))
    if shards > 1:
        # A conversation stays on one key, so that its turns meet their own prefix.
        shard = int(hashlib.sha256(conversation.encode()).hexdigest(), 16) % shards
        key = f"{key}-{shard}"
    retention = "24h" if config.takes_retention(profile.model) and profile.long_gaps > 0 else None
    return key, retention
