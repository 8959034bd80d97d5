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
from http.server import BaseHTTPRequestHandler
from typing import Any

from orchestrator import AgentSpec, ModelConfig
from tests.servers.wire_server import WireServer, read_body, send_json

HANG_S = 3600.0
"""How long a call given no answer (``hang``) waits for its client to go away."""


def wait_or_hang_up(request: BaseHTTPRequestHandler, delay_s: float) -> bool:
    """Wait ``delay_s``; False as soon as the client closes the connection."""
    end = time.monotonic() + delay_s
    while (left := end - time.monotonic()) > 0:
        readable, _, _ = select.select([request.connection], [], [], min(left, 0.05))
        if readable and not request.connection.recv(1, 2):  # MSG_PEEK: b"" is EOF
            return False
    return True


class SlowModelServer(WireServer):
    """Answers ``POST /v1/chat/completions`` after ``delay_s`` with the last user message
    echoed back. ``received``, ``answered``, ``refused`` and ``abandoned`` list the last user
    message of each call, in order."""

    protocol_version = "HTTP/1.1"

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.received: list[str] = []
        self.answered: list[str] = []
        self.refused: list[str] = []
        self.abandoned: list[str] = []
        self._refusals: dict[str, tuple[int, int, float]] = {}
        self._hangs: set[str] = set()
        self._lock = threading.Lock()
        super().__init__()

    def handle_post(self, request: BaseHTTPRequestHandler) -> None:
        body = json.loads(read_body(request) or b"{}")
        prompt = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        self._note(self.received, prompt)
        refusal = self._refusal(prompt)
        if refusal is not None:
            status, retry_after_s = refusal
            error = {"error": {"type": "rate_limit_error", "message": "slow down"}}
            send_json(request, status, error, headers={"retry-after": f"{retry_after_s:g}"})
            self._note(self.refused, prompt)
            return
        delay_s = HANG_S if self._hung(prompt) else self.delay_s
        if not wait_or_hang_up(request, delay_s):
            self._note(self.abandoned, prompt)
            request.close_connection = True
            return
        send_json(request, 200, completion(body["model"], f"answer to {prompt}"))
        self._note(self.answered, prompt)

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
        with self._lock:
            self._refusals[prompt] = (times, status, retry_after_s)

    def hang(self, prompt: str) -> None:
        """Give the next call whose last user message is ``prompt`` no answer until its client
        closes the connection (it is then in ``abandoned``)."""
        with self._lock:
            self._hangs.add(prompt)

    def _hung(self, prompt: str) -> bool:
        with self._lock:
            if prompt not in self._hangs:
                return False
            self._hangs.discard(prompt)
            return True

    def _refusal(self, prompt: str) -> tuple[int, float] | None:
        with self._lock:
            times, status, retry_after_s = self._refusals.get(prompt, (0, 0, 0.0))
            if times == 0:
                return None
            self._refusals[prompt] = (times - 1, status, retry_after_s)
            return status, retry_after_s

    def _note(self, where: list[str], prompt: str) -> None:
        with self._lock:
            where.append(prompt)


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
