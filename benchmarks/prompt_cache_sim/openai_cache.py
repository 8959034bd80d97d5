"""OpenAI automatic prompt caching (Chat Completions and Responses)."""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate

from benchmarks.prompt_cache_sim.core import Block, PrefixStore, prefix_keys

# ``prompt_cache_retention``, in seconds since the prefix's last use. OpenAI's guide says 5 to
# 10 minutes of inactivity for ``in_memory``; the low end is taken.
OPENAI_RETENTION_S: Mapping[str, float] = {"in_memory": 300.0, "24h": 86_400.0}


@dataclass(frozen=True)
class OpenAIUsage:
    """A request's ``prompt_tokens`` and ``cached_tokens`` as OpenAI reports them (cached
    tokens are counted inside ``prompt_tokens``). ``overflowed``: its routing bucket was over
    its rate, so it was served by a machine without the prefix."""

    prompt_tokens: int
    cached_tokens: int
    overflowed: bool = False


class OpenAICache:
    """OpenAI's automatic prompt cache for one organization.

    A request is routed by a hash of its first ``route_tokens`` tokens plus its
    ``prompt_cache_key``; it reads the longest prefix it shares with an earlier request routed
    the same way whose retention has not run out, if that prefix has at least ``min_tokens``
    tokens, rounded down to ``min_tokens + k * increment``. Every request stores its own
    prefixes (no write premium). Simplifications, each deliberate:

    - Prefixes match at block boundaries: a block shared only in part counts as not shared.
      Give blocks of ``increment`` tokens (as ``tests/servers/cache_servers.py`` does) and this is
      OpenAI's own granularity.
    - The routing hash covers, whole, every block that starts within the first
      ``route_tokens`` tokens.
    - Overflow: a routing bucket serves at most ``key_rpm`` requests per rolling ``window_s``;
      the requests beyond go to machines without the prefix: they read nothing and store
      nothing (in reality they warm those machines, which later requests may reach).
    - Both retentions count from the prefix's last use.

    Parameters:
        min_tokens: the shortest prefix cached (1024).
        increment: the step of cached lengths beyond ``min_tokens`` (128).
        route_tokens: the prompt start that routes a request (256).
        key_rpm: requests a routing bucket serves per ``window_s`` before overflowing (15).
        window_s: the rolling window of ``key_rpm`` (60 s).
        retention_s: seconds of each ``prompt_cache_retention`` (``OPENAI_RETENTION_S``).
        default_retention: the retention of a request that names none. OpenAI's default
            depends on the organization and model (``24h`` without zero data retention, and
            on gpt-5.5 and later); ``in_memory`` is the conservative choice.
    """

    def __init__(
        self,
        min_tokens: int = 1024,
        increment: int = 128,
        route_tokens: int = 256,
        key_rpm: int = 15,
        window_s: float = 60.0,
        retention_s: Mapping[str, float] = OPENAI_RETENTION_S,
        default_retention: str = "in_memory",
    ) -> None:
        self.min_tokens = min_tokens
        self.increment = increment
        self.route_tokens = route_tokens
        self.key_rpm = key_rpm
        self.window_s = window_s
        self.retention_s = dict(retention_s)
        self.default_retention = default_retention
        self._store = PrefixStore()
        self._served: dict[str, deque[float]] = {}

    def request(
        self,
        blocks: Sequence[Block],
        cache_key: str | None,
        retention: str | None,
        now: float,
        available_at: float | None = None,
        model: str = "",
    ) -> OpenAIUsage:
        """Process one request; its prefixes become readable from ``available_at`` (default
        ``now``). ``retention`` is ``prompt_cache_retention`` (None: ``default_retention``)."""
        retention = retention or self.default_retention
        if retention not in self.retention_s:
            raise ValueError(f"prompt_cache_retention must be one of {list(self.retention_s)}")
        self._store.advance(now)
        keys = prefix_keys(model, blocks)
        ends = list(accumulate(block.tokens for block in blocks))
        total = ends[-1] if ends else 0
        if not blocks:
            return OpenAIUsage(0, 0)
        route = max(
            i for i, block in enumerate(blocks) if ends[i] - block.tokens < self.route_tokens
        )
        bucket = hashlib.sha256(json.dumps([cache_key, keys[route]]).encode()).hexdigest()
        served = self._served.setdefault(bucket, deque())
        while served and served[0] <= now - self.window_s:
            served.popleft()
        if len(served) >= self.key_rpm:
            return OpenAIUsage(total, 0, overflowed=True)
        served.append(now)
        shared = 0
        for i in range(len(blocks) - 1, -1, -1):
            if self._store.live(f"{bucket}:{keys[i]}", now) is not None:
                shared = ends[i]
                break
        ready = now if available_at is None else available_at
        for key in keys:
            self._store.write(f"{bucket}:{key}", now, ready, retention, self.retention_s[retention])
        return OpenAIUsage(total, self.cached_length(shared))

    def cached_length(self, shared: int) -> int:
        """The tokens cached of a shared prefix of ``shared`` tokens: none below
        ``min_tokens``, else rounded down to ``min_tokens + k * increment``."""
        if shared < self.min_tokens:
            return 0
        return self.min_tokens + (shared - self.min_tokens) // self.increment * self.increment
