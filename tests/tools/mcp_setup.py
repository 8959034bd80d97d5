"""Real workers with MCP servers for the MCP tests: a stdio server written with the SDK
(``tests/tools/mcp_files_server.py``, declared as ``files``, and again as ``fragile`` for the test
that kills it), a streamable-HTTP one behind a bearer token (``tests/tools/mcp_search_server.py``,
as ``search``, and a second process as ``doomed`` for the test that stops it), a stdio server
that cannot start (``broken``), and a local server speaking the OpenAI wire format for model
turns."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

from orchestrator import AgentSpec, Client, ModelConfig, ToolPolicy
from orchestrator.local import LocalRedis, LocalWorker, free_port
from tests.conftest import FAST_TIMINGS, start_workers
from tests.servers.fake_api import FakeAPI

ROOT = str(Path(__file__).resolve().parents[2])


@dataclass
class McpWorkers:
    client: Client
    redis: LocalRedis
    api: FakeAPI
    workers: list[LocalWorker]
    token: str
    doomed: subprocess.Popen[bytes]
    logs: Path


def http_server(token: str) -> tuple[subprocess.Popen[bytes], int]:
    """``tests.tools.mcp_search_server`` on a free port, once it accepts connections."""
    port = free_port()
    command = [sys.executable, "-m", "tests.tools.mcp_search_server", str(port), token]
    process = subprocess.Popen(command, cwd=ROOT)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("the MCP HTTP server did not start") from None
            time.sleep(0.1)


def start(logs: Path) -> tuple[McpWorkers, list[subprocess.Popen[bytes]]]:
    redis = LocalRedis()
    token = f"t0k3n-{uuid4().hex}"
    search, search_port = http_server(token)
    doomed, doomed_port = http_server(token)
    stdio = [sys.executable, "-m", "tests.tools.mcp_files_server"]
    files: dict[str, Any] = {"command": stdio, "env": {"TEST_REDIS_URL": redis.url}, "cwd": ROOT}
    headers = {"Authorization": "SEARCH_TOKEN"}
    servers = {
        "files": {**files, "max_concurrency": 2},
        "fragile": {**files, "env": {**files["env"], "SERVER_NAME": "fragile"}},
        "broken": {"command": [sys.executable, "-c", "raise SystemExit(3)"]},
        "search": {"url": f"http://127.0.0.1:{search_port}/mcp", "headers_env": headers},
        "doomed": {"url": f"http://127.0.0.1:{doomed_port}/mcp", "headers_env": headers},
    }
    api = FakeAPI()
    endpoints = {"fake": {"provider": "openai", "base_url": f"http://127.0.0.1:{api.port}/v1"}}
    env = {
        "ORCHESTRATOR_REDIS_URL": redis.url,
        **FAST_TIMINGS,
        "ORCHESTRATOR_MCP_SERVERS": json.dumps(servers),
        "SEARCH_TOKEN": f"Bearer {token}",
        "ORCHESTRATOR_ENDPOINTS": json.dumps(endpoints),
        "OPENAI_API_KEY": "k",
    }
    workers = start_workers(env, ["mcp1", "mcp2"], logs, concurrency=4)
    client = Client(redis_url=redis.url)
    # A stdio server's start (a Python process importing the SDK) can take long on a busy
    # machine: a worker publishes such a server down, then up once it answers.
    expected = {"files", "fragile", "search", "doomed"}

    def all_up() -> bool:
        states = client.mcp_servers()
        return len(states) == 2 and all(
            {s.name for s in servers if s.up} >= expected for servers in states.values()
        )

    wait_for(all_up, "every MCP server up on both workers", timeout_s=240)
    return McpWorkers(client, redis, api, workers, token, doomed, logs), [search, doomed]


def stop(setup: McpWorkers, processes: list[subprocess.Popen[bytes]]) -> None:
    for worker in setup.workers:
        worker.stop()
    for process in processes:
        process.kill()
        process.wait()
    setup.api.close()
    setup.redis.stop()


def turn(*calls: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments} for name, arguments in calls]}


def scripted(script: list[dict[str, Any]], tools: list[str], **policy: Any) -> AgentSpec:
    model = ModelConfig(provider="scripted", options={"script": script})
    return AgentSpec(name="mcp-user", model=model, tools=tools, tool_policy=ToolPolicy(**policy))


def tool_messages(context: list[Any]) -> list[str]:
    return [m.content for m in context if m.role == "tool"]


def wait_for(check: Any, what: str, timeout_s: float = 90) -> Any:
    """``check()``'s first truthy value, looked at until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw: {what}")
        time.sleep(0.2)
    return value
