"""The base of the tests' local HTTP servers (model providers speaking their wire formats, an
OTLP collector): a threaded HTTP server on a free loopback port that hands every ``POST`` to
its subclass's ``handle_post``, until ``close()``."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar


class WireServer:
    """Serves on ``127.0.0.1:port`` from construction on. A subclass sets what its handler
    reads before calling ``super().__init__()``, which starts serving."""

    protocol_version: ClassVar[str] = "HTTP/1.0"
    """``HTTP/1.1`` keeps connections open between requests, as the SDKs expect."""

    def __init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = owner.protocol_version

            def do_POST(self) -> None:
                owner.handle_post(self)

            def log_message(self, *args: Any) -> None:
                pass  # the tests read what the server records, not its log

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        # A short poll makes close() quick: shutdown waits for the loop's next poll.
        serve = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        serve.start()

    def handle_post(self, request: BaseHTTPRequestHandler) -> None:
        """Answer one ``POST`` (in a thread of its own)."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()


def read_body(request: BaseHTTPRequestHandler) -> bytes:
    """The request's body, as long as its ``content-length`` says."""
    return request.rfile.read(int(request.headers.get("content-length", 0)))


def send(
    request: BaseHTTPRequestHandler,
    status: int,
    payload: bytes,
    content_type: str | None = "application/json",
    headers: Mapping[str, str] | None = None,
) -> None:
    """Answer ``request`` with ``status`` and ``payload`` (no ``content-type`` header when
    ``content_type`` is None), and ``headers``."""
    request.send_response(status)
    if content_type is not None:
        request.send_header("content-type", content_type)
    request.send_header("content-length", str(len(payload)))
    for name, value in (headers or {}).items():
        request.send_header(name, value)
    request.end_headers()
    request.wfile.write(payload)


def send_json(
    request: BaseHTTPRequestHandler,
    status: int,
    body: Any,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Answer ``request`` with ``status`` and ``body`` as JSON."""
    send(request, status, json.dumps(body).encode(), headers=headers)
