"""A local HTTP server that answers like a model provider: canned replies in order, and a
record of every request (path, headers, body). A ``rule`` can refuse a request first, as the
provider would (a 400 for a body its API does not accept)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.helpers import local_endpoints

SECRET = "sk-test-not-a-real-key-1234"

Rule = Callable[[dict[str, Any]], tuple[int, dict[str, Any]] | None]
"""Looks at a request body; (status, error body) to refuse it, None to let it through."""


class FakeAPI:
    """Serves ``replies`` (status, headers, body) one per request, on a free loopback port. A
    body that is bytes is sent as is (with its ``content-type`` header), any other as JSON."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, dict[str, str], Any]] = []
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.rule: Rule | None = None
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                headers = {name.lower(): value for name, value in self.headers.items()}
                api.requests.append((self.path, headers, body))
                refusal = api.rule(body) if api.rule is not None else None
                if refusal is not None:
                    status, headers, reply = refusal[0], {}, refusal[1]
                else:
                    status, headers, reply = api.replies.pop(0)
                raw = isinstance(reply, bytes)
                payload = reply if raw else json.dumps(reply).encode()
                self.send_response(status)
                if not raw:
                    self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def reply(self, body: dict[str, Any] | bytes, status: int = 200, **headers: str) -> None:
        self.replies.append((status, headers, body))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


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
