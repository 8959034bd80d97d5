"""The structured-output rules of the providers' documented wire formats, checked on their own
(no client code), and a local OpenAI Chat Completions server that enforces them.

* OpenAI Structured Outputs (``response_format`` / ``text.format`` of ``type: json_schema``
  with ``strict: true``): the root is an object and not ``anyOf``; every object sets
  ``additionalProperties: false`` and lists every property in ``required``; only the
  supported keywords (strings: ``pattern``, ``format``; numbers: ``multipleOf``, ``maximum``,
  ``exclusiveMaximum``, ``minimum``, ``exclusiveMinimum``; arrays: ``minItems``,
  ``maxItems``; ``anyOf``, ``enum``, ``const``, ``$defs`` and a ``$ref`` standing alone) are
  used. A ``name`` of 1 to 64 letters, digits, ``_`` or ``-`` is required.
* Anthropic structured outputs (``output_config.format`` of ``type: json_schema``): every object
  sets ``additionalProperties: false``; no numerical constraints, no ``minLength`` /
  ``maxLength``, no ``minItems`` other than 0 or 1, no recursion.

A request that breaks a rule gets the 400 ``invalid_request_error`` the provider answers with.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.servers.wire_server import WireServer, read_body, send_json

OPENAI_KEYWORDS = {
    "type", "description", "title", "enum", "const", "anyOf", "$ref", "$defs",
    "properties", "required", "additionalProperties", "items", "pattern", "format",
    "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum", "minItems",
    "maxItems",
}  # fmt: skip
ANTHROPIC_REFUSED = {
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
    "maxLength",
}  # fmt: skip
FORMAT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _nodes(schema: Any, path: str = "#") -> list[tuple[str, dict[str, Any]]]:
    """Every subschema of ``schema`` with its JSON pointer."""
    if not isinstance(schema, dict):
        return []
    found = [(path, schema)]
    for key in ("properties", "$defs"):
        for name, sub in (schema.get(key) or {}).items():
            found += _nodes(sub, f"{path}/{key}/{name}")
    if isinstance(schema.get("items"), dict):
        found += _nodes(schema["items"], f"{path}/items")
    for i, sub in enumerate(schema.get("anyOf") or []):
        found += _nodes(sub, f"{path}/anyOf/{i}")
    return found


def strict_violations(schema: Any) -> list[str]:
    """Why OpenAI's strict mode refuses ``schema`` (empty: it takes it)."""
    if not isinstance(schema, dict):
        return ["schema must be an object"]
    problems = []
    if schema.get("type") != "object" or "anyOf" in schema:
        problems.append("#: root must be an object, and not anyOf")
    for path, node in _nodes(schema):
        unknown = sorted(set(node) - OPENAI_KEYWORDS)
        if unknown:
            problems.append(f"{path}: {', '.join(unknown)} is not permitted")
        if "$ref" in node and len(node) > 1:
            problems.append(f"{path}: $ref cannot have keywords beside it")
        if node.get("type") == "object" or "properties" in node:
            if node.get("additionalProperties") is not False:
                problems.append(f"{path}: additionalProperties must be false")
            if sorted(node.get("required") or []) != sorted(node.get("properties") or {}):
                problems.append(f"{path}: required must list every property")
    return problems


def anthropic_violations(schema: Any) -> list[str]:
    """Why Anthropic's structured outputs refuse ``schema`` (empty: they take it)."""
    problems = []
    for path, node in _nodes(schema):
        refused = sorted(ANTHROPIC_REFUSED & set(node))
        if refused:
            problems.append(f"{path}: {', '.join(refused)} is not supported")
        if node.get("minItems", 0) not in (0, 1):
            problems.append(f"{path}: minItems must be 0 or 1")
        if node.get("type") == "object" and node.get("additionalProperties") is not False:
            problems.append(f"{path}: additionalProperties must be false")
    return problems


def openai_error(message: str) -> tuple[int, dict[str, Any]]:
    return 400, {"error": {"type": "invalid_request_error", "message": message, "param": None}}


def chat_rule(body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """The Chat Completions check of a ``response_format``; None when it passes."""
    return _format_rule((body.get("response_format") or {}).get("json_schema"), body)


def responses_rule(body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """The Responses check of a ``text.format``; None when it passes."""
    return _format_rule((body.get("text") or {}).get("format"), body)


def _format_rule(fmt: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    if fmt is None:
        return None
    if not FORMAT_NAME.match(str(fmt.get("name", ""))):
        return openai_error("Invalid 'name': must match ^[a-zA-Z0-9_-]{1,64}$")
    if fmt.get("strict"):
        problems = strict_violations(fmt.get("schema"))
        if problems:
            return openai_error(f"Invalid schema for response_format: {'; '.join(problems)}")
    return None


def anthropic_rule(body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """The Messages check of ``output_config.format`` and of a forced tool; None when it
    passes."""
    fmt = (body.get("output_config") or {}).get("format")
    problems = anthropic_violations(fmt["schema"]) if fmt else []
    if fmt and set(fmt) - {"type", "schema"}:
        extra = ", ".join(sorted(set(fmt) - {"type", "schema"}))
        problems.append(f"output_config.format.{extra}: Extra inputs are not permitted")
    choice = body.get("tool_choice") or {}
    if choice.get("type") in ("any", "tool") and (body.get("thinking") or {}).get("type"):
        problems.append("Thinking may not be enabled when tool_choice forces tool use.")
    names = {tool.get("name") for tool in body.get("tools") or []}
    if choice.get("type") == "tool" and choice.get("name") not in names:
        problems.append(f"tool_choice names {choice.get('name')!r}, which is not a tool")
    if not problems:
        return None
    error = {"type": "invalid_request_error", "message": "; ".join(problems)}
    return 400, {"type": "error", "error": error}


def chat_completion(content: str, prompt_tokens: int = 100, completion_tokens: int = 20) -> Any:
    """A Chat Completions answer with ``content`` and its usage."""
    return {
        "id": "chatcmpl-typed",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-test",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content},
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class ChatServer(WireServer):
    """``POST /v1/chat/completions`` on a free loopback port: refuses what ``chat_rule``
    refuses, else answers ``answer(body)`` (the content). ``requests`` holds every body
    received, in order."""

    def __init__(self, answer: Callable[[dict[str, Any]], str]) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        super().__init__()

    def handle_post(self, request: BaseHTTPRequestHandler) -> None:
        body = json.loads(read_body(request) or b"{}")
        with self._lock:
            self.requests.append(body)
        refusal = chat_rule(body)
        if refusal is not None:
            status, reply = refusal
        else:
            status, reply = 200, chat_completion(self.answer(body))
        send_json(request, status, reply)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def endpoints(self, name: str) -> str:
        """``ORCHESTRATOR_ENDPOINTS`` declaring this server as endpoint ``name``."""
        return json.dumps({name: {"provider": "openai", "base_url": self.base_url}})


def last_user(body: dict[str, Any]) -> str:
    """The last user message of a Chat Completions request."""
    return next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
