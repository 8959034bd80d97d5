"""Secrets out of provider error text before it is stored anywhere.

A provider's error message is kept in a run's outputs, records, events and results, and in
worker logs. Upstream bodies sometimes echo the request's credentials (a 401 that repeats the
``Authorization`` header, a proxy that dumps the request), so the text is redacted before it
becomes a ``ProviderError``. Each pattern below is narrow and says what it is for: ordinary
error text ("max_tokens is too large", request ids, model names) stays readable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

REDACTED = "[redacted]"
# Upstream bodies can be whole HTML pages; an error message this long says all it can.
MAX_CHARS = 2_000
# Only this much is searched: the rest is cut anyway, and the margin past ``MAX_CHARS`` keeps
# a secret that straddles the cut whole while it is matched.
_SEARCHED_CHARS = MAX_CHARS + 1_000

# A header or JSON/dict/query field separator, as it appears in raw headers (``Name: v``),
# JSON (``"name": "v"``), Python reprs of bodies (``'name': 'v'``) and queries (``name=v``).
_SEP = r"""["']?\s*[:=]\s*["']?"""
# A value runs to the next quote, space, bracket or separator: none of these occur in keys or
# tokens, and stopping at ``[`` leaves an already redacted value alone.
_VALUE = r"""[^\s"',;&(){}\[\]<>]+"""


def _authorization(match: re.Match[str]) -> str:
    scheme = f"{match.group(2)} " if match.group(2) else ""
    return f"{match.group(1)}{scheme}{REDACTED}"


_PATTERNS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # Authorization / Proxy-Authorization headers, echoed by a 401 or a proxy: the credential
    # after the scheme, whatever the scheme (Bearer, Basic, Token) and however it is shaped
    # (the scheme itself is kept, and is never taken for the credential).
    (
        re.compile(
            rf"(?i)(\b(?:proxy-)?authorization{_SEP})(?:(bearer|basic|token)\s+)?"
            rf"(?!(?:bearer|basic|token)\b){_VALUE}"
        ),
        _authorization,
    ),
    # A bare ``Bearer <token>`` outside any header name (logged request lines, messages). At
    # least 12 token characters, so prose like "Bearer token required" is left alone.
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{12,}"), r"\1 " + REDACTED),
    # Anthropic's ``x-api-key`` header, Azure's ``api-key``, and ``api_key``/``apikey`` fields
    # in JSON bodies and query strings: any value, since these names only ever hold a key.
    # (``api_key_env`` and ``OPENAI_API_KEY`` do not match: a separator must follow the name.)
    (re.compile(rf"(?i)(\b(?:x-)?api[-_]?key{_SEP}){_VALUE}"), r"\1" + REDACTED),
    # Other key-like names (access_token, client_secret, password, private_key, ...): only a
    # long token-shaped value (20+ base64/hex/url-safe characters), so counts such as
    # ``"prompt_tokens": 12`` and words such as ``"token": "invalid"`` stay readable.
    (
        re.compile(
            rf"(?i)(\b(?:[a-z0-9]+[-_])*(?:token|secret|password|passwd|credential|key)s?{_SEP})"
            r"[A-Za-z0-9+/_.=-]{20,}"
        ),
        r"\1" + REDACTED,
    ),
    # Anything shaped like an OpenAI or Anthropic key wherever it appears: ``sk-...``,
    # ``sk-proj-...``, ``sk-ant-api03-...`` with 20+ characters after ``sk-``.
    (re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"), REDACTED),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every value of ``secrets`` (exactly) and every credential-shaped value
    replaced by ``[redacted]``, cut to ``MAX_CHARS``. Redaction runs before the cut, so a
    secret straddling the cut cannot leave a prefix behind."""
    full_length = len(text)
    text = text[:_SEARCHED_CHARS]
    # The known secrets first, longest first (one may contain another), so they go whatever
    # their shape; an empty value (an unset variable) would match everywhere and is skipped.
    for secret in sorted({s for s in secrets if s and s.strip()}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    if full_length > _SEARCHED_CHARS or len(text) > MAX_CHARS:
        text = f"{text[:MAX_CHARS]}... [cut from {full_length} characters]"
    return text
