"""A local server speaking the OpenAI Chat Completions wire format that enforces a
tokens-per-minute limit as OpenAI does: a request is counted when it arrives, at the tokens it
uses (its prompt, about 4 characters a token, plus its answer, as long as
``max_completion_tokens``), against a sliding window; a request that would pass the limit is
refused with a 429 and OpenAI's rate-limit headers (``x-ratelimit-limit-tokens``,
``x-ratelimit-remaining-tokens``, ``x-ratelimit-reset-tokens`` as a duration such as
``1.25s``, and ``x-ratelimit-reset-requests``), without ``retry-after``. The usage it reports is
what it counted. Used by ``benchmarks/limits/tpm.py`` and the tests."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHARS_PER_TOKEN = 4


@dataclass
class Accepted:
    """A request the server took: when it arrived (``time.monotonic()``) and its tokens."""

    at: float
    tokens: int


class TokenLimitedServer:
    """Answers ``POST /v1/chat/completions`` after ``delay_s``, within ``limit`` tokens per
    ``window_s``; ``accepted`` lists the requests taken, ``refused`` counts the 429s."""

    def __init__(self, limit: int, window_s: float = 60.0, delay_s: float = 0.05) -> None:
        self.limit = limit
        self.window_s = window_s
        self.delay_s = delay_s
        self.accepted: list[Accepted] = []
        self.refused = 0
        self._window: deque[Accepted] = deque()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                prompt = "".join(str(m.get("content") or "") for m in body["messages"])
                prompt_tokens = math.ceil(len(prompt) / CHARS_PER_TOKEN)
                answer_tokens = int(body.get("max_completion_tokens") or 16)
                reset_s = server._admit(prompt_tokens + answer_tokens)
                if reset_s is not None:
                    self._refuse(reset_s)
                    return
                time.sleep(server.delay_s)
                usage = {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": answer_tokens,
                    "total_tokens": prompt_tokens + answer_tokens,
                }
                self._send(200, completion(body["model"], "x" * answer_tokens * 4, usage), {})

            def _refuse(self, reset_s: float) -> None:
                error = {
                    "error": {
                        "type": "tokens",
                        "code": "rate_limit_exceeded",
                        "message": "Rate limit reached for tokens per min",
                    }
                }
                headers = {
                    "x-ratelimit-limit-tokens": str(server.limit),
                    "x-ratelimit-remaining-tokens": str(server.remaining()),
                    "x-ratelimit-reset-tokens": f"{reset_s:.3f}s",
                    "x-ratelimit-reset-requests": "0s",
                }
                self._send(429, error, headers)

            def _send(self, status: int, reply: dict[str, Any], headers: dict[str, str]) -> None:
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
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def worker_env(self, name: str = "limited") -> dict[str, str]:
        """What a worker needs to serve this server as the endpoint ``name``."""
        endpoint = {"provider": "openai", "base_url": self.base_url}
        return {"ORCHESTRATOR_ENDPOINTS": json.dumps({name: endpoint}), "OPENAI_API_KEY": "k"}

    def _admit(self, tokens: int) -> float | None:
        """None when a request of ``tokens`` is taken now, else the seconds until it fits."""
        with self._lock:
            now = time.monotonic()
            while self._window and self._window[0].at <= now - self.window_s:
                self._window.popleft()
            used = sum(entry.tokens for entry in self._window)
            if used + tokens <= self.limit:
                entry = Accepted(now, tokens)
                self._window.append(entry)
                self.accepted.append(entry)
                return None
            self.refused += 1
            over = used + tokens - self.limit
            for entry in self._window:
                over -= entry.tokens
                if over <= 0:
                    return max(0.0, entry.at + self.window_s - now)
            return self.window_s  # larger than the whole limit: never fits

    def remaining(self) -> int:
        with self._lock:
            now = time.monotonic()
            used = sum(e.tokens for e in self._window if e.at > now - self.window_s)
            return max(0, self.limit - used)

    def busiest_window(self) -> int:
        """The most tokens taken in any ``window_s`` (a window starting at each request)."""
        with self._lock:
            taken = list(self.accepted)
        most = 0
        for first, start in enumerate(taken):
            inside = (e.tokens for e in taken[first:] if e.at < start.at + self.window_s)
            most = max(most, sum(inside))
        return most

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def completion(model: str, text: str, usage: dict[str, int]) -> dict[str, Any]:
    """A Chat Completions response with one final message and ``usage``."""
    return {
        "id": "chatcmpl-tpm",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": usage,
    }
