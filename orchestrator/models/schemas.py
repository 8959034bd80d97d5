"""An agent's output schema: what crosses the wire, and the validator both sides build from it.

A client gives ``AgentSpec.output_schema`` as a JSON Schema (a dict) or a pydantic model class,
which is turned into its JSON Schema here, on the client: only that data is sent, never code.
The schema is checked at submit against its dialect's metaschema (Draft 2020-12 unless its
``$schema`` names another), and its references must stay inside it (``#...``): nothing a
client sends makes a worker fetch a URL.

Workers validate each answer with ``jsonschema`` (a maintained implementation of every JSON
Schema draft, the reference validator of the Python ecosystem) through ``validator()``, whose
registry holds nothing but the schema itself, so an unresolvable reference fails instead of
being retrieved. Formats (``date``, ``email``...) are checked where ``jsonschema`` has a checker
for them.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import validators
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from pydantic import BaseModel
from referencing import Registry
from referencing.jsonschema import UnknownDialect, specification_with

REFERENCE_KEYS = ("$ref", "$dynamicRef", "$recursiveRef")
OUTPUT_SCHEMA_OPTION = "output_schema"
"""The model option a worker sets on an agent's calls from its ``output_schema`` (a client may
not: the spec's schema is the one answers are validated against)."""


def output_schema_of(value: object) -> dict[str, Any] | None:
    """``value`` as a checked JSON Schema: a pydantic model class becomes its
    ``model_json_schema()``; a dict is checked as it is; None stays None. ``ValueError`` says
    what is wrong."""
    if value is None:
        return None
    if isinstance(value, type) and issubclass(value, BaseModel):
        value = value.model_json_schema()
    if not isinstance(value, dict):
        raise ValueError(
            f"output_schema must be a JSON Schema (a dict) or a pydantic model class, "
            f"not {type(value).__name__}"
        )
    check_schema(value)
    return value


def check_schema(schema: dict[str, Any]) -> None:
    """``ValueError`` unless ``schema`` is a valid JSON Schema of a known dialect whose
    references all point inside it."""
    dialect = schema.get("$schema")
    if dialect is not None:
        try:
            specification_with(str(dialect))
        except UnknownDialect:
            raise ValueError(f"$schema {dialect!r} is not a JSON Schema dialect") from None
    kind = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        kind.check_schema(schema)
    except SchemaError as error:
        where = "/".join(str(step) for step in error.absolute_path) or "the root"
        raise ValueError(f"not a valid JSON Schema at {where}: {error.message}") from None
    for reference in _references(schema):
        if not reference.startswith("#"):
            raise ValueError(
                f"reference {reference!r}: an output schema may only refer inside itself "
                "('#/$defs/...'); nothing is fetched"
            )


def _references(value: object) -> list[str]:
    found: list[str] = []
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            found.extend(str(current[key]) for key in REFERENCE_KEYS if key in current)
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
    return found


def canonical(value: object) -> str:
    """``value`` as compact JSON with sorted keys: one text per schema."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compact(value: object) -> str:
    """``value`` as compact JSON, keys in their order (what a typed answer and an item are)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def validator(schema: dict[str, Any]) -> Validator:
    """A validator of ``schema`` (built once per schema and process): its dialect's, checking
    formats, resolving references inside the schema only."""
    return _validator(canonical(schema))


@lru_cache(maxsize=256)
def _validator(text: str) -> Validator:
    schema = json.loads(text)
    kind = validators.validator_for(schema, default=validators.Draft202012Validator)
    # An empty registry: a reference outside the schema is unresolvable, never retrieved.
    return kind(schema, registry=Registry(), format_checker=kind.FORMAT_CHECKER)
