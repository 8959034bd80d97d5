"""The regular expressions of an output schema, matched with RE2.

A schema's patterns (``pattern``, the keys of ``patternProperties``) come from a client and the
strings they are matched against from a model. Python's ``re`` backtracks: ``^(a+)+$`` against
forty ``a`` and a ``!`` takes hours, and holds the GIL all along, so the worker's heartbeats,
time limits and cancels stop with it, and the member handed over by the watchdog freezes the
next worker. RE2 (``google-re2``, Google's engine, maintained for exactly this: untrusted
patterns) matches in time linear in the string and bounds the memory a pattern compiles to, so
the workers' validator matches patterns with it (``validator_kind``) instead of ``re``.

What RE2 cannot compile (lookaround and backreferences, which need backtracking, or a pattern
too large) is refused at submit (``check_patterns``), as is ``unevaluatedProperties`` beside
``patternProperties``: ``jsonschema`` finds the properties such patterns evaluate with ``re``.
RE2's classes are ECMA-262's, as JSON Schema asks (``\\d`` is ``[0-9]``).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache, lru_cache
from typing import Any, cast

import re2
from jsonschema import validators
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is the caller's error, not a log line


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    return re2.compile(pattern, _OPTIONS)


def pattern_problem(pattern: str) -> str | None:
    """Why RE2 cannot take ``pattern`` (None when it can)."""
    try:
        _compiled(pattern)
    except re2.error as error:
        cause = error.args[0] if error.args else error
        said = cause.decode(errors="replace") if isinstance(cause, bytes) else str(cause)
        return (
            f"pattern {pattern!r} cannot be matched in linear time ({said}): the workers "
            "match patterns with RE2, which has no lookaround or backreferences"
        )
    return None


def check_patterns(schema: object) -> None:
    """``ValueError`` for the first pattern of ``schema`` RE2 cannot take, or for
    ``unevaluatedProperties`` beside ``patternProperties``."""
    keywords = set()
    for keyword, pattern in _patterns(schema):
        keywords.add(keyword)
        problem = pattern_problem(pattern)
        if problem is not None:
            raise ValueError(problem)
    if "patternProperties" in keywords and _has_key(schema, "unevaluatedProperties"):
        raise ValueError(
            "unevaluatedProperties beside patternProperties is not supported: the workers "
            "match patterns in linear time, and that combination is evaluated with backtracking"
        )


def _patterns(schema: object) -> Iterator[tuple[str, str]]:
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                yield "pattern", node["pattern"]
            if isinstance(node.get("patternProperties"), dict):
                for key in node["patternProperties"]:
                    yield "patternProperties", str(key)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _has_key(schema: object, key: str) -> bool:
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if key in node:
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


# A keyword function gets the validator that runs it: its ``descend`` (not in jsonschema's
# ``Validator`` protocol) validates a part of the instance against a subschema.
Keyword = Any


def _search(pattern: str, text: str) -> bool:
    return _compiled(pattern).search(text) is not None


def _pattern(validator: Keyword, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Keyword, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional(kind: type[Validator]) -> Any:
    """``additionalProperties`` of ``kind``, with the properties ``patternProperties`` matches
    found by RE2 (``kind``'s own where there are none)."""
    own = kind.VALIDATORS["additionalProperties"]

    def additional_properties(
        validator: Keyword, extra: Any, instance: Any, schema: Any
    ) -> Iterator[Any]:
        patterns = schema.get("patternProperties") or {}
        if not patterns or not validator.is_type(instance, "object"):
            yield from own(validator, extra, instance, schema)
            return
        listed = schema.get("properties", {})
        extras = [
            key
            for key in instance
            if key not in listed and not any(_search(pattern, key) for pattern in patterns)
        ]
        if validator.is_type(extra, "object"):
            for key in extras:
                yield from validator.descend(instance[key], extra, path=key)
        elif extra is False and extras:
            verb = "does" if len(extras) == 1 else "do"
            keys = ", ".join(repr(key) for key in sorted(extras))
            regexes = ", ".join(repr(pattern) for pattern in sorted(patterns))
            yield ValidationError(f"{keys} {verb} not match any of the regexes: {regexes}")

    return additional_properties


@cache
def validator_kind(kind: type[Validator]) -> type[Validator]:
    """``kind`` (a dialect's validator class) matching patterns with RE2."""
    matchers = {"pattern": _pattern, "patternProperties": _pattern_properties}
    matchers["additionalProperties"] = _additional(kind)
    extend = cast(Any, validators.extend)  # untyped in jsonschema
    extended: type[Validator] = extend(kind, matchers)
    return extended
