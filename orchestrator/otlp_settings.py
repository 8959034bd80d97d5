"""The OTLP exporter's ``OTEL_EXPORTER_OTLP_*`` settings, checked before the exporter is built.

The OpenTelemetry SDK reads these variables itself and, on a value it cannot use, logs a
warning quoting the value and goes on without it: a curl-style
``OTEL_EXPORTER_OTLP_HEADERS="Authorization: Bearer TOKEN"`` puts the token in the log and
exports without the header. Each setting the exporter reads is checked here first; a problem is
reported naming the variable, never its value (a header or an endpoint may hold a credential).

Headers are checked with the SDK's own parser (``opentelemetry.util.re.parse_env_headers``, the
one the exporter uses), entry by entry, with its warning (which quotes the entry) kept out of
the logs.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import urlsplit

HEADERS = ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
TIMEOUTS = ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
COMPRESSIONS = ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION")
FILES = tuple(
    f"OTEL_EXPORTER_OTLP_{signal}{part}"
    for part in ("CERTIFICATE", "CLIENT_KEY", "CLIENT_CERTIFICATE")
    for signal in ("TRACES_", "")
)
COMPRESSION_NAMES = ("none", "gzip", "deflate")
_ENTRY_DELIMITER = re.compile(r"[ \t]*,[ \t]*")  # the SDK's own (opentelemetry.util.re)


def otlp_problem(environ: Mapping[str, str] = os.environ) -> str | None:
    """What is wrong with the OTLP settings in ``environ``, naming the variable and never its
    value; None when the exporter can use them all."""
    for variable in HEADERS:
        problem = _headers_problem(variable, environ.get(variable, ""))
        if problem:
            return problem
    for variable in ENDPOINTS:
        value = environ.get(variable, "").strip()
        if value and not _is_http_url(value):
            return f"{variable}: not an http:// or https:// URL with a host"
    for variable in TIMEOUTS:
        value = environ.get(variable, "").strip()
        if value and not _is_positive_number(value):
            return f"{variable}: not a positive number"
    for variable in COMPRESSIONS:
        value = environ.get(variable, "").strip().lower()
        if value and value not in COMPRESSION_NAMES:
            return f"{variable}: not one of {', '.join(COMPRESSION_NAMES)}"
    for variable in FILES:
        value = environ.get(variable, "").strip()
        if value and not os.path.isfile(value):
            return f"{variable}: no such file"
    return None


def _headers_problem(variable: str, value: str) -> str | None:
    from opentelemetry.util.re import parse_env_headers

    entries = [entry for entry in _ENTRY_DELIMITER.split(value) if entry.strip()]
    with _quiet(logging.getLogger("opentelemetry.util.re")):
        for number, entry in enumerate(entries, 1):
            if not parse_env_headers(entry, liberal=True):
                return (
                    f"{variable}: entry {number} of {len(entries)} is not name=value (the "
                    "W3C baggage form the OTLP exporter reads: name=value pairs separated by "
                    "commas, values URL-encoded, e.g. Authorization=Bearer%20TOKEN)"
                )
    return None


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """``logger`` logs nothing in the block (its records would quote a header)."""
    drop = _DropAll()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number, or out of range
        return False


def _is_positive_number(value: str) -> bool:
    try:
        number = float(value)
    except ValueError:
        return False
    return math.isfinite(number) and number > 0
