"""The OTLP exporter's ``OTEL_EXPORTER_OTLP_*`` settings, checked before the exporter is built.

The OpenTelemetry SDK reads these variables itself and, on a value it cannot use, logs a
warning quoting the value and goes on without it: a curl-style
``OTEL_EXPORTER_OTLP_HEADERS="Authorization: Bearer TOKEN"`` puts the token in the log and
exports without the header. Each setting the exporter reads is checked here first; a problem is
reported naming the variable, never its value (a header or an endpoint may hold a credential).

Headers are checked with the SDK's own parser (``opentelemetry.util.re.parse_env_headers``, the
one the exporter uses), entry by entry, with its warning (which quotes the entry) kept out of
the logs; then each parsed name and value as ``requests`` and ``http.client`` will take them
when the first batch is sent (a URL-encoded ``%0A`` in a value passes the parser, and the
export's error would quote the value).

``sdk_problem`` checks what the SDK reads for every exporter: the batch processor's
``OTEL_BSP_*`` integers and ``OTEL_RESOURCE_ATTRIBUTES``, which it logs, value and all, when
it cannot parse them.
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
CREDENTIAL_PROVIDERS = (
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER",
)
CREDENTIAL_PROVIDER_GROUP = "opentelemetry_otlp_credential_provider"
BATCH_INTEGERS = (
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_BSP_EXPORT_TIMEOUT",
)
RESOURCE_ATTRIBUTES = "OTEL_RESOURCE_ATTRIBUTES"
COMPRESSION_NAMES = ("none", "gzip", "deflate")
# RFC 9110 token: what a header name may hold (requests refuses the rest, quoting it).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters other than tab: http.client refuses them in a value.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
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
    for variable in CREDENTIAL_PROVIDERS:
        value = environ.get(variable, "")
        if value and not _has_credential_provider(value):
            return (
                f"{variable}: no such credential provider (an entry point of the group "
                f"{CREDENTIAL_PROVIDER_GROUP})"
            )
    return None


def sdk_problem(environ: Mapping[str, str] = os.environ) -> str | None:
    """What is wrong with the SDK settings every exporter uses (the batch processor's and the
    resource's), naming the variable and never its value; None when the SDK can use them."""
    for variable in BATCH_INTEGERS:
        value = environ.get(variable)
        if value is not None and not _is_positive_integer(value):
            return f"{variable}: not a positive integer"
    attributes = environ.get(RESOURCE_ATTRIBUTES, "")
    items = [item for item in attributes.split(",") if item.strip()]
    for number, item in enumerate(items, 1):
        if "=" not in item:
            return f"{RESOURCE_ATTRIBUTES}: entry {number} of {len(items)} is not key=value"
    return None


def _headers_problem(variable: str, value: str) -> str | None:
    from opentelemetry.util.re import parse_env_headers

    entries = [entry for entry in _ENTRY_DELIMITER.split(value) if entry.strip()]
    with _quiet(logging.getLogger("opentelemetry.util.re")):
        for number, entry in enumerate(entries, 1):
            parsed = parse_env_headers(entry, liberal=True)
            if not parsed:
                return (
                    f"{variable}: entry {number} of {len(entries)} is not name=value (the "
                    "W3C baggage form the OTLP exporter reads: name=value pairs separated by "
                    "commas, values URL-encoded, e.g. Authorization=Bearer%20TOKEN)"
                )
            for name, header in parsed.items():
                if not _TOKEN.fullmatch(name):
                    return f"{variable}: entry {number} of {len(entries)}: not a header name"
                if not _is_header_value(header):
                    return (
                        f"{variable}: entry {number} of {len(entries)}: a value holds a "
                        "control character (CR, LF...) or a character outside Latin-1"
                    )
    return None


def _is_header_value(value: str) -> bool:
    """Whether ``http.client`` sends ``value`` as it is (Latin-1, no control character)."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return not _CONTROL.search(value)


def _has_credential_provider(name: str) -> bool:
    from importlib.metadata import entry_points

    return bool(entry_points(group=CREDENTIAL_PROVIDER_GROUP, name=name))


def _is_positive_integer(value: str) -> bool:
    try:
        return int(value) > 0  # as the SDK reads it: int() of the raw value
    except ValueError:
        return False


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
