"""What the cache servers share: the HTTP plumbing, the clock, the record of requests, and the
scripted answers that let an agent's loop run a few tool turns and then finish."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar, TypedDict

from benchmarks.prompt_cache_sim import AnthropicUsage, OpenAIUsage
from tests.servers.wire_server import WireServer, read_body, send_json


class FakeClock:
    """A clock for the servers that moves only when told: ``clock.advance(301)``."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward."""
        self.now += seconds


@dataclass(frozen=True)
class Script:
    """What the server answers: a call of ``tool_name`` with ``tool_input`` while the
    conversation has fewer than ``tool_turns`` assistant turns, then ``final_text``."""

    tool_turns: int = 0
    tool_name: str = "lookup"
    tool_input: dict[str, Any] = field(default_factory=dict)
    final_text: str = "done"


class ServerOptions(TypedDict, total=False):
    """Options every cache server takes: its ``Script`` fields, ``delay_s`` (how long each
    answer takes; the entries a request writes become readable when it ends), and ``clock``
    (the simulator's time, ``time.time`` by default)."""

    tool_turns: int
    tool_name: str
    tool_input: dict[str, Any]
    final_text: str
    delay_s: float
    clock: Callable[[], float]


KEY = "test-cache-server-key"


class CacheServer(WireServer):
    """A local HTTP server answering ``POST {path}`` from a prompt-cache simulator, on a free
    loopback port. ``received`` lists every request body, ``usages`` the wire ``usage`` of
    every answered request, ``sim_usages`` the simulator's view of it (read point, entries
    written). A subclass parses its wire format in ``answer``."""

    path: ClassVar[str]
    provider: ClassVar[str]  # the orchestrator's provider name for this wire format
    key_env: ClassVar[str]
    url_suffix: ClassVar[str]  # what the SDK's base_url adds to the host
    protocol_version = "HTTP/1.1"

    def __init__(
        self,
        *,
        tool_turns: int = 0,
        tool_name: str = "lookup",
        tool_input: dict[str, Any] | None = None,
        final_text: str = "done",
        delay_s: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.script = Script(tool_turns, tool_name, dict(tool_input or {}), final_text)
        self.delay_s = delay_s
        self.clock = clock
        self.received: list[dict[str, Any]] = []
        self.usages: list[dict[str, Any]] = []
        self.sim_usages: list[AnthropicUsage | OpenAIUsage] = []
        # The simulator wants its calls one at a time and in clock order.
        self._lock = threading.Lock()
        super().__init__()

    def handle_post(self, request: BaseHTTPRequestHandler) -> None:
        if request.path.split("?")[0] != self.path:
            send_json(request, 404, self.error(f"no route {request.path}", "not_found_error"))
            return
        status, reply = self._handle(read_body(request))
        time.sleep(self.delay_s)
        send_json(request, status, reply)

    @property
    def base_url(self) -> str:
        """The ``base_url`` to give this format's SDK client."""
        return f"http://127.0.0.1:{self.port}{self.url_suffix}"

    def worker_env(self, name: str) -> dict[str, str]:
        """What a worker needs to serve this server as the endpoint ``name``."""
        endpoint = {"provider": self.provider, "base_url": self.base_url}
        # A key of a key's length: errors are redacted of the key, and "k" would mangle them.
        return {"ORCHESTRATOR_ENDPOINTS": json.dumps({name: endpoint}), self.key_env: KEY}

    def answer(
        self, body: dict[str, Any], now: float, available_at: float
    ) -> tuple[int, dict[str, Any], AnthropicUsage | OpenAIUsage | None]:
        """The status, reply and simulator usage (None for a refusal) of ``body``."""
        raise NotImplementedError

    def error(self, message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
        """This format's error body."""
        raise NotImplementedError

    def tool_turn(self, assistant_turns: int) -> bool:
        """Whether the answer after ``assistant_turns`` assistant turns is a tool call."""
        return assistant_turns < self.script.tool_turns

    def _handle(self, raw: bytes) -> tuple[int, dict[str, Any]]:
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as problem:
            return 400, self.error(f"body is not JSON: {problem}")
        with self._lock:
            self.received.append(body)
            now = self.clock()
            try:
                status, reply, used = self.answer(body, now, now + self.delay_s)
            except (KeyError, TypeError, ValueError, AttributeError) as problem:
                # A malformed body: the real API answers 400 too, and the test reads why.
                return 400, self.error(f"malformed request: {problem!r}")
            if used is not None:
                self.usages.append(reply["usage"])
                self.sim_usages.append(used)
            return status, reply


def combined_env(*envs: dict[str, str]) -> dict[str, str]:
    """``worker_env`` of several servers as one environment: their endpoints together."""
    endpoints: dict[str, Any] = {}
    merged: dict[str, str] = {}
    for env in envs:
        endpoints.update(json.loads(env.get("ORCHESTRATOR_ENDPOINTS", "{}")))
        merged.update(env)
    merged["ORCHESTRATOR_ENDPOINTS"] = json.dumps(endpoints)
    return merged
