"""A local server speaking the OpenAI Chat Completions wire format for framework agents: a
request that offers tools and has no tool result yet gets a call of its first tool (with
``arguments``); any other request gets a final text, ``done: {last tool result}`` (or
``done: {last user message}``). Every call uses 10 input and 5 output tokens; every request
body is kept in ``bodies``."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.servers.model_server import completion
from tests.servers.wire_server import WireServer, read_body, send_json


class ToolingModelServer(WireServer):
    """See the module docstring; ``arguments`` are what each tool call asks for."""

    protocol_version = "HTTP/1.1"

    def __init__(self, arguments: dict[str, Any]) -> None:
        self.arguments = arguments
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        super().__init__()

    def handle_post(self, request: BaseHTTPRequestHandler) -> None:
        body = json.loads(read_body(request) or b"{}")
        with self._lock:
            self.bodies.append(body)
        send_json(request, 200, self.answer(body))

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body["messages"]
        results = [m for m in messages if m["role"] == "tool"]
        if body.get("tools") and not results:
            name = body["tools"][0]["function"]["name"]
            reply = completion(body["model"], "")
            message = reply["choices"][0]["message"]
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": f"call_{len(self.bodies)}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(self.arguments)},
                }
            ]
            reply["choices"][0]["finish_reason"] = "tool_calls"
            return reply
        last = (
            results[-1] if results else next(m for m in reversed(messages) if m["role"] == "user")
        )
        return completion(body["model"], f"done: {last['content']}")

    def worker_env(self) -> dict[str, str]:
        """What a worker needs to serve this server as the endpoint ``tooling``."""
        endpoint = {"provider": "openai", "base_url": f"http://127.0.0.1:{self.port}/v1"}
        return {"ORCHESTRATOR_ENDPOINTS": json.dumps({"tooling": endpoint}), "OPENAI_API_KEY": "k"}
