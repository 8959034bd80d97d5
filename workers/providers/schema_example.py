"""A value that a JSON Schema validates, made without a model: what the offline ``scripted``
model answers an agent with an ``output_schema``.

Deterministic and small: every property an object lists (required or not), the fewest array
items allowed, the first of an ``enum``, ``anyOf`` or ``oneOf``, numbers at their lower bound,
strings ``"scripted"`` fitted to their length limits or an example of their ``format``.
``pattern`` is not followed (no value is searched for), nor are ``not`` and conditionals: a
schema that needs them gets a value its validation refuses, and the agent's retries say so.
"""

from __future__ import annotations

import math
from typing import Any

FORMATS = {
    "date": "2024-01-31",
    "date-time": "2024-01-31T12:00:00Z",
    "time": "12:00:00Z",
    "email": "scripted@example.com",
    "uri": "https://example.com/scripted",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
}
MAX_DEPTH = 16
"""How deep references are followed (a recursive schema ends with the least value there)."""


def example(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """A value of ``schema`` (``root``: the document its references point into)."""
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return None  # ``true`` or ``{}``-like: anything goes
    if "$ref" in schema and depth < MAX_DEPTH:
        return example(_resolve(root, str(schema["$ref"])), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return example(schema[key][0], root, depth + 1)
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = example(part, root, depth + 1)
            if not isinstance(value, dict):
                return value
            merged.update(value)
        return merged
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else None
    return _typed(kind, schema, root, depth)


def _typed(kind: Any, schema: dict[str, Any], root: Any, depth: int) -> Any:
    if kind == "object":
        properties = schema.get("properties") or {}
        if depth >= MAX_DEPTH:
            properties = {k: properties[k] for k in schema.get("required", []) if k in properties}
        return {name: example(sub, root, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        prefix = [example(sub, root, depth + 1) for sub in schema.get("prefixItems") or []]
        count = int(schema.get("minItems", 0))
        rest = [example(schema.get("items"), root, depth + 1)] * max(0, count - len(prefix))
        return prefix + rest
    if kind == "string":
        if schema.get("format") in FORMATS:
            return FORMATS[schema["format"]]
        text = "scripted"
        text = text.ljust(int(schema.get("minLength", 0)), "x")
        return text[: int(schema["maxLength"])] if "maxLength" in schema else text
    if kind in ("number", "integer"):
        return _number(schema, kind == "integer")
    if kind == "boolean":
        return False
    return None


def _number(schema: dict[str, Any], integer: bool) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    value: float = 0 if low is None else low
    if high is not None and value > high:
        value = high
    step = schema.get("multipleOf") or (1 if integer else 0)
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        value = schema["exclusiveMinimum"] + (step or 1)
    if step:
        value = math.ceil(value / step) * step
    return int(value) if integer else value


def _resolve(root: Any, reference: str) -> Any:
    """The part of ``root`` a local reference (``#/$defs/Line``) names; {} for any other."""
    if not reference.startswith("#"):
        return {}
    node = root
    for step in (part for part in reference[1:].split("/") if part):
        step = step.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list) and step.isdigit():
            node = node[int(step)]
        elif isinstance(node, dict) and step in node:
            node = node[step]
        else:
            return {}
    return node
