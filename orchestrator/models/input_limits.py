"""Limits on what a submission may hold, checked by the client before anything is dispatched.

A request that validates is stored as JSON in Redis and parsed again by the workers, so the
client refuses, naming the place, every value the round trip would break or that would only
fail later on a worker:

- floats that are not finite (``inf``, ``nan``): JSON has no spelling for them (pydantic writes
  ``nan`` as ``null``) and ``deadline_s=inf`` overflows when the deadline is computed;
- strings that are not valid Unicode (lone surrogates such as ``"\\ud800"``): they cannot be
  encoded as UTF-8, so the request cannot be written at all;
- values nested deeper than ``MAX_DEPTH``;
- sizes above the limits below.

The limits, and why:

- ``MAX_DEPTH = 32`` levels of objects and arrays, counted in the stored request document (the
  request itself is level 1, so ``mapper.model.options`` is level 4). Pydantic's JSON
  serializer and parser stop at about 200 levels, and a request the client accepts must be one
  the workers can parse. Real options, messages and tool arguments are a handful of levels
  deep; 32 leaves room for them while keeping far from the parsers' limits.
- ``MAX_STRING_CHARS = 1_000_000`` characters in any string (an item, the task, a prompt, a
  message, instructions, an option): about 250,000 tokens, more than any model's context window
  holds, so a longer string could never be sent to a model whole.
- ``MAX_ITEMS = 1_000_000`` items in a map-reduce: one member per item, each with its own state
  and result kept in Redis for the run's life.
- ``MAX_ITEMS_BYTES = 256 MB`` of items in all (UTF-8): they are written to Redis in one command,
  which Redis caps at 1 GB (``client-query-buffer-limit``), and kept in its memory.
- ``MAX_REQUEST_BYTES = 64 MB`` of request JSON: the request is one Redis string, read back and
  parsed by the workers that run its members; the size is estimated from the values (strings by
  their UTF-8 size, escapes not counted), without serializing the request.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from orchestrator.errors import InvalidRunError

MAX_DEPTH = 32
MAX_STRING_CHARS = 1_000_000
MAX_ITEMS = 1_000_000
MAX_ITEMS_BYTES = 256 * 1024 * 1024
MAX_REQUEST_BYTES = 64 * 1024 * 1024

_MB = 1024 * 1024

# A path is built only when it is reported: (parent path, key), or None above the root.
_Path = tuple[Any, str | int] | None


def _render(where: str, path: _Path) -> str:
    parts: list[str | int] = []
    while path is not None:
        path, key = path
        parts.append(key)
    text = where
    for key in reversed(parts):
        if isinstance(key, int):
            text += f"[{key}]"
        elif key.isidentifier():
            text += f".{key}" if text else key
        else:
            shown = repr(key)  # escapes lone surrogates, so the message itself is valid
            text += f"[{shown[:40]}{'...' if len(shown) > 40 else ''}]"
    return text or "request"


def _check_string(text: str, where: str, path: _Path) -> int:
    """Refuse a string that is too long or not valid Unicode; return its UTF-8 size."""
    if len(text) > MAX_STRING_CHARS:
        raise InvalidRunError(
            f"{_render(where, path)}: {len(text):,} characters, above the limit of "
            f"{MAX_STRING_CHARS:,}"
        )
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidRunError(
            f"{_render(where, path)}: not valid Unicode (lone surrogate)"
        ) from None


def check_request_value(value: object, where: str) -> None:
    """Refuse ``value`` (a request, or a value inside one, at path ``where``) with
    ``InvalidRunError(f"{where}: ...")`` when it holds a float that is not finite, a string
    that is not valid Unicode, nesting deeper than ``MAX_DEPTH``, a string above
    ``MAX_STRING_CHARS`` or more than ``MAX_REQUEST_BYTES`` of JSON.

    ``value`` is JSON-like: dicts, lists (and tuples and sets), str, int, float, bool, None;
    pydantic models are walked through their fields. Other values are left to validation.
    With ``where=""`` the value is the request itself and its fields are named bare
    (``mapper.model.options``). The walk is iterative, so no depth exhausts Python's stack.
    """
    size = 0
    stack: list[tuple[object, _Path, int]] = [(value, None, 0)]
    while stack:
        current, path, depth = stack.pop()
        if isinstance(current, BaseModel):
            fields = {name: getattr(current, name) for name in type(current).model_fields}
            current = {**fields, **(current.model_extra or {})}
        if isinstance(current, dict | list | tuple | set | frozenset):
            if depth + 1 > MAX_DEPTH:
                raise InvalidRunError(
                    f"{_render(where, path)}: nested deeper than {MAX_DEPTH} levels"
                )
            size += 2
            if isinstance(current, dict):
                for key, child in current.items():
                    if isinstance(key, str):
                        size += _check_string(key, where, (path, key)) + 3
                    stack.append(
                        (child, (path, key if isinstance(key, str) else str(key)), depth + 1)
                    )
            else:
                for position, child in enumerate(current):
                    size += 1
                    stack.append((child, (path, position), depth + 1))
        elif isinstance(current, str):
            size += _check_string(current, where, path) + 2
        elif isinstance(current, float):
            if not math.isfinite(current):
                raise InvalidRunError(f"{_render(where, path)}: {current} is not a finite number")
            size += 24
        elif isinstance(current, int):  # bool included
            size += current.bit_length() * 3 // 10 + 2
        else:
            size += 4
        if size > MAX_REQUEST_BYTES:
            raise InvalidRunError(
                f"{_render(where, path)}: the request is larger than "
                f"{MAX_REQUEST_BYTES // _MB} MB as JSON"
            )


def check_items(items: Sequence[str]) -> None:
    """Refuse map-reduce ``items`` above ``MAX_ITEMS`` in number or ``MAX_ITEMS_BYTES`` in all,
    or holding a string above ``MAX_STRING_CHARS`` or not valid Unicode (``items[3]: ...``)."""
    if len(items) > MAX_ITEMS:
        raise InvalidRunError(f"items: {len(items):,} items, above the limit of {MAX_ITEMS:,}")
    total = 0
    for position, item in enumerate(items):
        total += _check_string(item, "items", (None, position))
        if total > MAX_ITEMS_BYTES:
            raise InvalidRunError(
                f"items: more than {MAX_ITEMS_BYTES // _MB} MB in all (at items[{position}])"
            )
