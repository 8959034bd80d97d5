"""A wrapper that makes every model call attempt take a slot of its shared provider pool.

It wraps each HTTP attempt, inside the retries (``Retrying(Pooled(base))``): every attempt takes
its own slot and counts once against the per-minute limits, and a back-off between attempts
holds no slot.

With ``tpm``, an attempt also reserves its upper bound of tokens (the bound its budget reserves:
its input, never undercounted, plus its output limit) in the pool's window, shared by every
worker, counted from when its request is sent (``inflight.when_sent``). After the attempt the
reservation becomes the usage the provider reported (nothing for an attempt the provider
refused, the bound when it did not say). A call that would pass the limit waits, holding no
slot, until enough older calls leave the window; a cancel ends the wait at once. A 429 whose
headers say when to retry pauses the pool for every worker until then.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any

import redis

from orchestrator.config.settings import PoolLimit
from orchestrator.models import Message, ModelConfig, utcnow
from orchestrator.tools import ToolInfo
from workers.execution.cancellation import CancelToken
from workers.limits import NeverFits, SharedLimit
from workers.providers import inflight
from workers.providers.base import (
    ModelResponse,
    ModelSurface,
    ProviderError,
    RetryableProviderError,
)

log = logging.getLogger(__name__)

# The longest a 429 pauses a pool, whatever its headers say: a reset hours away is a quota,
# which no pause helps, and the retries give up on it anyway.
MAX_PAUSE_S = 60.0


class PooledProvider:
    """Calls ``inner`` within the pool configured for ``provider:model`` (else ``provider``);
    with no pool configured, calls it directly.

    Parameters:
        inner: the provider (a surface, which bounds the tokens of a call).
        client: the state Redis, where pools are counted for all workers.
        limits: pools by ``provider:model`` or ``provider``.
        lease_s: how long a dead holder keeps its slot (``settings.lease_s``).
    """

    def __init__(
        self,
        inner: ModelSurface,
        client: redis.Redis,
        limits: dict[str, PoolLimit],
        lease_s: float,
    ) -> None:
        self._inner = inner
        self._client = client
        self._limits = limits
        self._lease_s = lease_s

    def complete(
        self,
        config: ModelConfig,
        messages: list[Message],
        cancel: CancelToken,
        tools: list[ToolInfo],
    ) -> ModelResponse:
        pool = self._pool(config.provider, config.model)
        if pool is None:
            return self._inner.complete(config, messages, cancel, tools)
        bound = 0
        if pool.counts_tokens:
            bound = self._inner.input_token_bound(config, messages, tools)
            bound += config.max_output_tokens
        try:
            with pool.hold(cancel, bound) as token:
                started = utcnow()
                response = self._attempt(pool, token, bound, config, messages, cancel, tools)
                ended = utcnow()
        except NeverFits as never:
            raise ProviderError(str(never), unbilled=True) from None
        response.started_at, response.ended_at = started, ended
        return response

    def _attempt(
        self,
        pool: SharedLimit,
        token: str,
        bound: int,
        config: ModelConfig,
        messages: list[Message],
        cancel: CancelToken,
        tools: list[ToolInfo],
    ) -> ModelResponse:
        """One call within its slot; its tokens settled, its 429 pausing the pool."""
        try:
            if pool.counts_tokens:
                with inflight.when_sent(lambda: _quietly(pool.restamp, token)):
                    response = self._inner.complete(config, messages, cancel, tools)
            else:
                response = self._inner.complete(config, messages, cancel, tools)
        except ProviderError as failure:
            if failure.unbilled:
                _quietly(pool.settle, token, 0)  # refused: the provider counted nothing
            if isinstance(failure, RetryableProviderError) and failure.rate_limited:
                wait_s = failure.retry_after_s
                if wait_s is not None and wait_s > 0:
                    _quietly(pool.hold_off, min(wait_s, MAX_PAUSE_S))
            raise
        if response.usage_reported:
            _quietly(pool.settle, token, response.usage.total_tokens)
        return response

    def _pool(self, provider: str, model: str) -> SharedLimit | None:
        for name in (f"{provider}:{model}", provider):
            if name in self._limits:
                return _limit(self._client, name, self._limits[name], self._lease_s)
        return None


def _quietly(step: Callable[..., object], *args: Any) -> None:
    """A bookkeeping step after the call: an outage leaves the window conservative (the bound
    stays counted, the pause is not shared), never fails a call that was made."""
    try:
        step(*args)
    except redis.RedisError as outage:
        log.warning("a provider pool's bookkeeping failed (%s)", outage)


@cache
def _limit(client: redis.Redis, name: str, limit: PoolLimit, lease_s: float) -> SharedLimit:
    return SharedLimit(
        client,
        f"provider:{name}",
        limit.max_concurrent,
        limit.rpm,
        lease_s,
        tokens_per_minute=limit.tpm,
        window_s=limit.window_s,
        pausable=True,
    )


# When a rate-limited provider says to try again, from the headers of its 429.
# ``retry-after`` (seconds; an HTTP date is not used) wins. Without it, the reset headers of
# each limit: OpenAI's ``x-ratelimit-reset-requests`` / ``-tokens`` (durations such as ``1s``,
# ``6m0s``, ``20ms``) and Anthropic's ``anthropic-ratelimit-{requests,tokens,input-tokens,
# output-tokens}-reset`` (RFC 3339 times). A 429 does not say which limit refused the call, so
# the wait is the longest of them: the one after which every limit has room again.
OPENAI_RESETS = ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
ANTHROPIC_RESETS = tuple(
    f"anthropic-ratelimit-{limit}-reset"
    for limit in ("requests", "tokens", "input-tokens", "output-tokens")
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

Headers = Mapping[str, str]


def retry_wait_s(
    headers: Headers | None, now: Callable[[], datetime] | None = None
) -> float | None:
    """Seconds until the provider takes calls again, or None when the headers do not say."""
    if headers is None:
        return None
    after = _seconds(headers.get("retry-after"))
    if after is not None:
        return after
    waits = [_duration_s(headers.get(name)) for name in OPENAI_RESETS]
    clock = now or (lambda: datetime.now(UTC))
    waits += [_until_s(headers.get(name), clock) for name in ANTHROPIC_RESETS]
    known = [wait for wait in waits if wait is not None]
    return max(known) if known else None


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: not used


def _duration_s(value: str | None) -> float | None:
    """An OpenAI reset duration (``1m30.5s``, ``250ms``) in seconds."""
    if not value:
        return None
    text = value.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return _seconds(text)  # a bare number of seconds, or nothing usable
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


def _until_s(value: str | None, now: Callable[[], datetime]) -> float | None:
    """Seconds from now until an RFC 3339 time (never negative)."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now()).total_seconds())
