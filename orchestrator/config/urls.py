"""The URLs of the settings: which schemes each may have, and how their passwords are kept out
of what is shown (masked for display, collected for redacting text)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qs, unquote, urlsplit

from kombu.utils.url import maybe_sanitize_url

REDIS_SCHEMES = ("redis", "rediss", "unix", "sentinel")
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")  # the broker alone may be RabbitMQ
URL_FIELDS = ("redis_url", "broker_url", "result_backend")
"""The settings that are URLs, which may hold a password."""


def is_sentinel(url: str) -> bool:
    """True for a ``sentinel://`` URL (or failover list starting with one)."""
    return urlsplit(url.split(";", 1)[0]).scheme.lower() == "sentinel"


def masked_url(url: str) -> str:
    """``url`` with its password replaced by ``**`` (``redis://:**@host:6379/0``), by kombu's
    sanitizer, the one Celery's banner uses; each URL of a ``;``-separated failover list is
    masked."""
    return ";".join(str(maybe_sanitize_url(part)) for part in url.split(";"))


def url_passwords(urls: Iterable[str | None]) -> set[str]:
    """The passwords in ``urls`` (as written and percent-decoded, and ``?password=`` values),
    for redacting text that might repeat them."""
    found: set[str] = set()
    for part in (part for url in urls for part in (url or "").split(";")):
        try:
            parts = urlsplit(part)
        except ValueError:  # not a URL at all (a malformed IPv6 host): no password to find
            continue
        for value in (parts.password, *parse_qs(parts.query).get("password", [])):
            if value:
                found.update({value, unquote(value)})
    return found
