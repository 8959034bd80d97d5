"""Model calls in flight are aborted by a cancel, and end at their time limit, against a local
server that speaks the providers' wire format and can hang: it reads a request, never answers,
and records when the client closes the connection."""

from __future__ import annotations

import json
import select
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.config.settings import Settings
from orchestrator.models import Message, ModelConfig
from tests.helpers import local_endpoints
from workers.execution.cancellation import Cancelled, CancelToken
from workers.providers import PROVIDERS, ProviderError, RetryableProviderError, get_provider

# Every wait here is for a positive signal; this is only how long to wait before failing.
WAIT_S = 10.0
# Long enough that no test ends by it when the abort works; short enough that a test whose
# abort is broken fails at this limit instead of hanging.
CALL_LIMIT_S = 30


class HangingAPI:
    """An HTTP/1.1 server on a free loopback port. Each request gets the next queued JSON
    reply (the connection is kept open for more), or, when none is queued, no answer at all:
    the server then waits for the client to close that connection and sets ``closed``."""

    def __init__(self) -> None:
        self.replies: list[dict[str, Any]] = []
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.connections = 0
        self.received = threading.Event()
        self.closed = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            pending = b""
            while True:
                while b"\r\n\r\n" not in pending:
                    chunk = self._recv(conn)
                    if not chunk:
                        return  # the client closed an idle connection
                    pending += chunk
                head, pending = pending.split(b"\r\n\r\n", 1)
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                headers = dict(line.split(":", 1) for line in header_lines)
                lengths = [v for k, v in headers.items() if k.strip().lower() == "content-length"]
                length = int(lengths[0]) if lengths else 0
                while len(pending) < length:
                    chunk = self._recv(conn)
                    if not chunk:
                        return
                    pending += chunk
                body, pending = pending[:length], pending[length:]
                with self._lock:
                    self.requests.append((request_line.split(" ")[1], json.loads(body or b"{}")))
                    reply = self.replies.pop(0) if self.replies else None
                self.received.set()
                if reply is None:
                    self._hang(conn)
                    return
                payload = json.dumps(reply).encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )

    def _recv(self, conn: socket.socket) -> bytes:
        """The next bytes from ``conn``; empty at EOF, a reset, or when the server stops."""
        while not self._stop.is_set():
            if select.select([conn], [], [], 0.1)[0]:
                try:
                    return conn.recv(65536)
                except OSError:
                    return b""
        return b""

    def _hang(self, conn: socket.socket) -> None:
        # Never answer; anything the client still sends is read and dropped until its EOF.
        while self._recv(conn):
            pass
        if not self._stop.is_set():
            self.closed.set()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()


CHAT_ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-test",
    "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "5"}}
    ],
    "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8},
}
QUESTION = [Message(role="user", content="What is 2 + 3?")]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[HangingAPI]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-anthropic")
    server = HangingAPI()
    monkeypatch.setenv("ORCHESTRATOR_ENDPOINTS", local_endpoints(server.port))
    yield server
    server.close()


def config(provider: str, api: HangingAPI, **options: Any) -> ModelConfig:
    return ModelConfig(
        provider=provider, model="m-test", endpoint=f"test-{provider}", options=options
    )


def cancel_once_received(api: HangingAPI, token: CancelToken) -> threading.Thread:
    """A thread that stops ``token`` once the server holds the request, as a user's cancel
    arriving while the model is thinking."""

    def stop() -> None:
        # The first call of a process imports its SDK before it sends: on a busy machine that
        # takes a while, and only the request's arrival is the signal to wait for.
        if api.received.wait(CALL_LIMIT_S * 4):
            token.cancel("run cancelled by the user")

    thread = threading.Thread(target=stop, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    ("provider", "path"),
    [
        ("openai", "/v1/chat/completions"),
        ("openai_responses", "/v1/responses"),
        ("anthropic", "/v1/messages"),
    ],
)
def test_a_cancel_aborts_the_call_in_flight_and_closes_its_connection(
    api: HangingAPI, provider: str, path: str
) -> None:
    token = CancelToken()
    canceller = cancel_once_received(api, token)
    with pytest.raises(Cancelled, match="run cancelled by the user"):
        get_provider(provider, Settings()).complete(
            config(provider, api, timeout_s=CALL_LIMIT_S), QUESTION, token, []
        )
    canceller.join(WAIT_S)
    assert api.closed.wait(WAIT_S), "the aborted call's connection was never closed"
    assert [p for p, _ in api.requests] == [path]


def test_the_thread_calls_again_after_a_cancel(api: HangingAPI) -> None:
    token = CancelToken()
    cancel_once_received(api, token)
    with pytest.raises(Cancelled):
        PROVIDERS["openai"](Settings()).complete(
            config("openai", api, timeout_s=CALL_LIMIT_S), QUESTION, token, []
        )
    api.replies.append(CHAT_ANSWER)
    response = PROVIDERS["openai"](Settings()).complete(
        config("openai", api), QUESTION, CancelToken(), []
    )
    assert response.text == "5"


def test_a_call_past_its_time_limit_fails_and_is_not_retried(api: HangingAPI) -> None:
    with pytest.raises(ProviderError, match=r"timed out after 0\.5 s") as failure:
        get_provider("openai", Settings()).complete(
            config("openai", api, timeout_s=0.5), QUESTION, CancelToken(), []
        )
    assert str(failure.value) == "openai.chat: model call timed out after 0.5 s"
    assert not isinstance(failure.value, RetryableProviderError)
    assert len(api.requests) == 1
    assert api.closed.wait(WAIT_S), "the timed-out call's connection was never closed"


def test_calls_of_one_thread_reuse_its_connection(api: HangingAPI) -> None:
    api.replies.extend([CHAT_ANSWER, CHAT_ANSWER])
    provider = get_provider("openai", Settings())
    first = provider.complete(config("openai", api), QUESTION, CancelToken(), [])
    second = provider.complete(config("openai", api), QUESTION, CancelToken(), [])
    assert (first.text, second.text) == ("5", "5")
    assert first.usage.input_tokens == 7
    assert len(api.requests) == 2
    assert api.connections == 1


def test_a_token_stopped_before_the_call_sends_nothing(api: HangingAPI) -> None:
    token = CancelToken()
    token.cancel("deadline passed")
    with pytest.raises(Cancelled, match="deadline passed"):
        PROVIDERS["anthropic"](Settings()).complete(config("anthropic", api), QUESTION, token, [])
    assert api.requests == []
