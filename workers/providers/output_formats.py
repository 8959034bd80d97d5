"""How each surface asks for an agent's output schema in its provider's native mode, with the
schema adapted to what that mode accepts. Answers are validated against the agent's own schema
on the worker whatever the mode (``workers/agent/structured.py``), so an adaptation may only
narrow what the model may answer, or widen it by a constraint the mode cannot say (kept in the
description, where the model reads it, and enforced by the validation).

* OpenAI (Chat ``response_format``, Responses ``text.format``): ``json_schema`` with
  ``strict: true`` when the schema can follow strict mode's rules: the root an object, every
  object closed (``additionalProperties: false``) with every property required (an optional
  one becomes required: a stricter answer is still a valid one), only the keywords strict
  mode takes. A schema that cannot (free-form objects, ``allOf``, ``not``, conditionals, a
  root that is no object) is sent as it is with ``strict: false``: the model follows it as
  guidance, the validation holds the line.
* Anthropic Messages: structured outputs (``output_config.format``), the schema adapted by the
  SDK's own ``anthropic.transform_schema``. A schema those cannot express (a free-form object,
  a recursive reference) is asked as a forced tool call instead, whose ``input_schema`` is the
  schema as given; with thinking on, which forced tool use excludes, or a root that is no
  object (a tool's input is one), it is asked in the system prompt.
"""

from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from typing import Any

from orchestrator.models import ModelConfig
from orchestrator.models.schemas import OUTPUT_SCHEMA_OPTION, canonical, compact

OUTPUT_TOOL = "structured_output"
"""The tool an Anthropic agent answers through when structured outputs cannot take its schema."""

# What strict mode takes; anything else is moved to the description (a narrowing constraint)
# or makes the schema non-strict (STRUCTURAL).
_STRICT_KEYWORDS = frozenset(
    {
        "type", "enum", "const", "anyOf", "$ref", "$defs", "description", "title",
        "pattern", "format", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
        "exclusiveMinimum", "items", "minItems", "maxItems", "properties", "required",
        "additionalProperties",
    }
)  # fmt: skip
_STRUCTURAL = frozenset(
    {
        "allOf", "not", "if", "then", "else", "dependentRequired", "dependentSchemas",
        "patternProperties", "unevaluatedProperties", "unevaluatedItems", "propertyNames",
        "prefixItems", "contains", "$dynamicRef", "$recursiveRef", "definitions",
    }
)  # fmt: skip
_ANNOTATIONS = frozenset(
    {"default", "examples", "$comment", "$schema", "$id", "deprecated", "readOnly", "writeOnly"}
)


class NotStrict(ValueError):
    """The schema cannot follow strict mode's rules."""


def asked_schema(config: ModelConfig) -> dict[str, Any] | None:
    """The output schema the worker set on this call (``workers/agent/structured.py``)."""
    schema = config.options.get(OUTPUT_SCHEMA_OPTION)
    return schema if isinstance(schema, dict) else None


def format_name(schema: dict[str, Any]) -> str:
    """The name OpenAI's formats need (``^[a-zA-Z0-9_-]{1,64}$``): the schema's title, else
    ``output``."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", str(schema.get("title") or "")).strip("_")[:64]
    return name or "output"


def openai_format(schema: dict[str, Any]) -> dict[str, Any]:
    """``name``, ``schema`` and ``strict`` of an OpenAI ``json_schema`` format."""
    adapted, strict = _openai_adapted(compact(schema))
    return {"name": format_name(schema), "schema": copy.deepcopy(adapted), "strict": strict}


@lru_cache(maxsize=256)
def _openai_adapted(text: str) -> tuple[dict[str, Any], bool]:
    schema = json.loads(text)
    try:
        if schema.get("type") != "object":
            raise NotStrict("the root is no object")
        return _strict(schema, schema), True
    except NotStrict:
        return schema, False


def _strict(node: Any, root: dict[str, Any]) -> Any:
    if not isinstance(node, dict):
        raise NotStrict("a boolean schema")
    node = dict(node)
    if "$ref" in node and len(node) > 1:  # strict mode takes a reference alone
        node = {**_resolve(root, node.pop("$ref")), **node}
    if "oneOf" in node:  # widens (anyOf allows more than one match); validation holds
        node["anyOf"] = node.pop("oneOf")
    if _STRUCTURAL & node.keys():
        raise NotStrict(", ".join(sorted(_STRUCTURAL & node.keys())))
    adapted: dict[str, Any] = {}
    narrowing: list[str] = []
    for key, value in node.items():
        if key in _ANNOTATIONS:
            continue
        if key not in _STRICT_KEYWORDS:
            narrowing.append(f"{key}: {canonical(value)}")
        elif key in ("properties", "$defs"):
            adapted[key] = {name: _strict(sub, root) for name, sub in value.items()}
        elif key == "items":
            adapted[key] = _strict(value, root)
        elif key == "anyOf":
            adapted[key] = [_strict(sub, root) for sub in value]
        else:
            adapted[key] = value
    if "properties" in adapted or _types(adapted) == {"object"}:
        if node.get("additionalProperties", False) is not False or "properties" not in adapted:
            raise NotStrict("a free-form object")
        adapted["additionalProperties"] = False
        adapted["required"] = list(adapted["properties"])
    if narrowing:
        said = adapted.get("description")
        adapted["description"] = "\n\n".join(filter(None, [said, "{" + ", ".join(narrowing) + "}"]))
    return adapted


def _types(node: dict[str, Any]) -> set[str]:
    kind = node.get("type")
    return set(kind) if isinstance(kind, list) else {kind} if isinstance(kind, str) else set()


def _resolve(root: dict[str, Any], reference: str) -> dict[str, Any]:
    node: Any = root
    for step in (part for part in reference.lstrip("#").split("/") if part):
        node = node.get(step.replace("~1", "/").replace("~0", "~"), {})
    return dict(node) if isinstance(node, dict) else {}


def anthropic_fields(
    schema: dict[str, Any], thinking: bool, tools: list[dict[str, Any]], system: str
) -> dict[str, Any]:
    """The Messages request fields that ask for ``schema`` (given the call's ``tools`` and
    ``system`` prompt): ``output_config``, or ``tools`` and ``tool_choice``, or ``system``."""
    if _anthropic_native(compact(schema)):
        import anthropic  # the surface's SDK: its own adaptation to structured outputs' rules

        adapted = anthropic.transform_schema(copy.deepcopy(schema))
        return {"output_config": {"format": {"type": "json_schema", "schema": adapted}}}
    if not thinking and schema.get("type") == "object":  # a tool's input is an object
        tool = {
            "name": OUTPUT_TOOL,
            "description": "Give your final answer: call this with it, and nothing else.",
            "input_schema": schema,
        }
        choice = {"type": "any"} if tools else {"type": "tool", "name": OUTPUT_TOOL}
        return {"tools": [*tools, tool], "tool_choice": choice}
    said = f"Answer with only a JSON value that matches this JSON Schema: {canonical(schema)}"
    return {"system": f"{system}\n\n{said}".strip()}


@lru_cache(maxsize=256)
def _anthropic_native(text: str) -> bool:
    """Whether structured outputs can take the schema: no free-form object (they close every
    object) and no recursion (a definition that refers back to itself, or to the root)."""
    schema = json.loads(text)
    if schema.get("type") != "object" or _free_form(schema) or "#" in _references(schema):
        return False
    definitions = schema.get("$defs") or {}
    refers = {f"#/$defs/{name}": _references(sub) for name, sub in definitions.items()}

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for reference in refers.get(start, set()):
            if reference == target or (
                reference not in seen and reaches(reference, target, seen | {reference})
            ):
                return True
        return False

    return not any(reaches(name, name, {name}) for name in refers)


def _free_form(node: Any) -> bool:
    if isinstance(node, list):
        return any(_free_form(item) for item in node)
    if not isinstance(node, dict):
        return False
    if node.get("additionalProperties", False) not in (False, None):
        return True
    if node.get("type") == "object" and not node.get("properties"):
        return True
    return any(_free_form(value) for value in node.values() if isinstance(value, dict | list))


def _references(node: Any) -> set[str]:
    if isinstance(node, list):
        return set().union(*(_references(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = {str(node["$ref"])} if "$ref" in node else set()
    for key, value in node.items():
        if key != "$defs" and isinstance(value, dict | list):
            found |= _references(value)
    return found
