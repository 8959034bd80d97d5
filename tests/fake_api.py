"""A local HTTP server that answers like a model provider: canned JSON replies in order, and a
record of every request (path, headers, body)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeAPI:
    """Serves ``replies`` (status, headers, body) one per request, on a free loopback port."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, dict[str, str], dict[str, Any]]] = []
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                headers = {name.lower(): value for name, value in self.headers.items()}
                api.requests.append((self.path, headers, body))
                status, headers, reply = api.replies.pop(0)
                payload = json.dumps(reply).encode()
                self.send_response(status)
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

    def reply(self, body: dict[str, Any], status: int = 200, **headers: str) -> None:
        self.replies.append((status, headers, body))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
