"""A local server speaking the OpenAI Chat Completions wire format, slow on purpose: each call
takes ``delay_s`` before its answer, and the server records every call it received, every call
it answered, every call it refused (``refuse``), and every call whose client closed the
connection before the answer. A call can also be held unanswered until its client goes away
(``hang``: a worker killed inside the call)."""

from __future__ import annotations

import json
import select
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from orchestrator import AgentSpec, ModelConfig

HANG_S = 3600.0
"""How long a call given no answer (``hang``) waits for its client to go away."""


class SlowModelServer:
    """Answers ``POST /v1/chat/completions`` after ``delay_s`` with the last user message
    echoed back. ``received``, ``answered``, ``refused`` and ``abandoned`` list the last user
    message of each call, in order."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.received: list[str] = []
        self.answered: list[str] = []
        self.refused: list[str] = []
        self.abandoned: list[str] = []
        self._refusals: dict[str, tuple[int, int, float]] = {}
        self._hangs: set[str] = set()
        self._changed = threading.Condition()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                prompt = next(
                    (m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), ""
                )
                server._note(server.received, prompt)
                refusal = server._refusal(prompt)
                if refusal is not None:
                    self._refuse(*refusal)
                    server._note(server.refused, prompt)
                    return
                delay_s = HANG_S if server._hung(prompt) else server.delay_s
                if not self._wait_or_hang_up(delay_s):
                    server._note(server.abandoned, prompt)
                    self.close_connection = True
                    return
                payload = json.dumps(completion(body["model"], f"answer to {prompt}")).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                server._note(server.answered, prompt)

            def _refuse(self, status: int, retry_after_s: float) -> None:
                error = {"error": {"type": "rate_limit_error", "message": "slow down"}}
                payload = json.dumps(error).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.send_header("retry-after", f"{retry_after_s:g}")
                self.end_headers()
                self.wfile.write(payload)

            def _wait_or_hang_up(self, delay_s: float) -> bool:
                """Wait ``delay_s``; False as soon as the client closes the connection."""
                end = time.monotonic() + delay_s
                while (left := end - time.monotonic()) > 0:
                    readable, _, _ = select.select([self.connection], [], [], min(left, 0.05))
                    if readable and not self.connection.recv(1, 2):  # MSG_PEEK: b"" is EOF
                        return False
                return True

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def worker_env(self) -> dict[str, str]:
        """What a worker needs to serve this server as the endpoint ``slow``."""
        endpoint = {"provider": "openai", "base_url": self.base_url}
        return {"ORCHESTRATOR_ENDPOINTS": json.dumps({"slow": endpoint}), "OPENAI_API_KEY": "k"}

    def agent(self, name: str, model: str = "slow") -> AgentSpec:
        """An agent whose model calls go to this server (its workers need ``worker_env()``)."""
        config = ModelConfig(provider="openai", model=model, endpoint="slow")
        return AgentSpec(name=name, model=config)

    def refuse(self, prompt: str, times: int, retry_after_s: float, status: int = 429) -> None:
        """Refuse the next ``times`` calls whose last user message is ``prompt`` at once, with
        ``status`` and ``Retry-After: retry_after_s``."""
        with self._changed:
            self._refusals[prompt] = (times, status, retry_after_s)

    def hang(self, prompt: str) -> None:
        """Give the next call whose last user message is ``prompt`` no answer until its client
        closes the connection (it is then in ``abandoned``)."""
        with self._changed:
            self._hangs.add(prompt)

    def _hung(self, prompt: str) -> bool:
        with self._changed:
            if prompt not in self._hangs:
                return False
            self._hangs.discard(prompt)
            return True

    def _refusal(self, prompt: str) -> tuple[int, float] | None:
        with self._changed:
            times, status, retry_after_s = self._refusals.get(prompt, (0, 0, 0.0))
            if times == 0:
                return None
            self._refusals[prompt] = (times - 1, status, retry_after_s)
            return status, retry_after_s

    def _note(self, where: list[str], prompt: str) -> None:
        with self._changed:
            where.append(prompt)
            self._changed.notify_all()

    def wait_until(self, check: Any, timeout_s: float) -> bool:
        """Wait until ``check()`` holds (re-checked whenever the server records a call)."""
        end = time.monotonic() + timeout_s
        with self._changed:
            while not check():
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def completion(model: str, text: str) -> dict[str, Any]:
    """A Chat Completions response with one final message."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
