"""When a rate-limited provider says to try again, from the headers of its 429.

``retry-after`` (seconds; an HTTP date is not used) wins. Without it, the reset headers of
each limit: OpenAI's ``x-ratelimit-reset-requests`` / ``-tokens`` (durations such as ``1s``,
``6m0s``, ``20ms``) and Anthropic's ``anthropic-ratelimit-{requests,tokens,input-tokens,
output-tokens}-reset`` (RFC 3339 times). A 429 does not say which limit refused the call, so
the wait is the longest of them: the one after which every limit has room again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

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
