"""A local HTTP server that answers like a model provider: canned replies in order, and a
record of every request (path, headers, body). A ``rule`` can refuse a request first, as the
provider would (a 400 for a body its API does not accept)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from tests.helpers import local_endpoints
from tests.servers.wire_server import WireServer, read_body, send, send_json

SECRET = "sk-test-not-a-real-key-1234"

Rule = Callable[[dict[str, Any]], tuple[int, dict[str, Any]] | None]
"""Looks at a request body; (status, error body) to refuse it, None to let it through."""


class FakeAPI(WireServer):
    """Serves ``replies`` (status, headers, body) one per request, on a free loopback port. A
    body that is bytes is sent as is (with its ``content-type`` header), any other as JSON."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, dict[str, str], Any]] = []
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.rule: Rule | None = None
        super().__init__()

    def handle_post(self, request: BaseHTTPRequestHandler) -> None:
        body = json.loads(read_body(request) or b"{}")
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.requests.append((request.path, headers, body))
        refusal = self.rule(body) if self.rule is not None else None
        if refusal is not None:
            status, headers, reply = refusal[0], {}, refusal[1]
        else:
            status, headers, reply = self.replies.pop(0)
        if isinstance(reply, bytes):
            send(request, status, reply, content_type=None, headers=headers)
        else:
            send_json(request, status, reply, headers=headers)

    def reply(self, body: dict[str, Any] | bytes, status: int = 200, **headers: str) -> None:
        self.replies.append((status, headers, body))


def serve_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAPI]:
    """A local API declared as every HTTP provider's endpoint, with a key and prices."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    prices = {
        "openai:gpt-test": {"input": 1.0, "output": 2.0, "cached_input": 0.5},
        "openai_responses:gpt-test": {"input": 1.0, "output": 2.0, "cached_input": 0.5},
        "anthropic:claude-test": {
            "input": 3.0,
            "output": 15.0,
            "cached_input": 0.3,
            "cache_write": 3.75,
        },
    }
    monkeypatch.setenv("ORCHESTRATOR_PRICES", json.dumps(prices))
    server = FakeAPI()
    monkeypatch.setenv("ORCHESTRATOR_ENDPOINTS", local_endpoints(server.port))
    yield server
    server.close()
