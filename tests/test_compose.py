"""``docker-compose.yml`` never starts open: Redis requires a password every service uses, and
Flower asks for basic auth. Flower's service is run here as composed (its command and
environment, on a local Redis), since Docker may not be installed."""

from __future__ import annotations

import base64
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.local import LocalRedis, free_port

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
WORKERS = ("coordinator", "agents", "tools", "learner")
REDIS_PASSWORD = secrets.token_hex(16)
FLOWER_USER, FLOWER_PASSWORD = "admin", f"flower-{secrets.token_hex(12)}"
_VARIABLE = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """``value`` with ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}`` replaced from
    ``env`` as compose does; an unset or empty ``:?`` variable is compose's refusal to start."""

    def one(found: re.Match[str]) -> str:
        name, kind, text = found.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise LookupError(f"compose refuses to start: {text}")
        return text if kind == "-" else ""

    return _VARIABLE.sub(one, value)


def test_redis_requires_a_password_that_every_service_uses() -> None:
    command = SERVICES["redis"]["command"]
    assert command[command.index("--requirepass") + 1].startswith("${REDIS_PASSWORD:?")
    for name in (*WORKERS, "flower"):
        url = SERVICES[name]["environment"]["ORCHESTRATOR_REDIS_URL"]
        env = {"REDIS_PASSWORD": REDIS_PASSWORD}
        assert interpolate(url, env) == f"redis://:{REDIS_PASSWORD}@redis:6379/0", name
        with pytest.raises(LookupError, match="set REDIS_PASSWORD"):
            interpolate(url, {})


def test_flower_requires_basic_auth_and_holds_no_provider_key() -> None:
    environment = SERVICES["flower"]["environment"]
    with pytest.raises(LookupError, match="set FLOWER_BASIC_AUTH=user:password"):
        interpolate(environment["FLOWER_BASIC_AUTH"], {})
    assert "FLOWER_UNAUTHENTICATED_API" not in environment
    assert not [name for name in environment if name.endswith("_API_KEY")]
    for name in WORKERS:  # the keys are for the workers
        assert {"OPENAI_API_KEY", "ANTHROPIC_API_KEY"} <= set(SERVICES[name]["environment"])


@dataclass
class Flower:
    port: int
    log: Path

    def get(self, path: str, credentials: str | None = None) -> int:
        """The status of ``GET path``, with ``user:password`` as basic auth if given."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        if credentials is not None:
            token = base64.b64encode(credentials.encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as refused:
            return refused.code


@pytest.fixture(scope="module")
def flower(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flower]:
    """Flower's service as composed: its command and environment, Redis on this machine."""
    server = LocalRedis(password=REDIS_PASSWORD)
    service = SERVICES["flower"]
    given = {
        "REDIS_PASSWORD": REDIS_PASSWORD,
        "FLOWER_BASIC_AUTH": f"{FLOWER_USER}:{FLOWER_PASSWORD}",
    }
    environment = {
        name: interpolate(str(value), given) for name, value in service["environment"].items()
    }
    redis_url = environment["ORCHESTRATOR_REDIS_URL"]
    environment["ORCHESTRATOR_REDIS_URL"] = redis_url.replace(
        "@redis:6379", f"@127.0.0.1:{server.port}"
    )
    port = free_port()
    command = [arg.replace("--port=5555", f"--port={port}") for arg in service["command"]]
    assert command[0] == "celery"
    command = [sys.executable, "-m", "celery", *command[1:], "--address=127.0.0.1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "FLOWER_"))}
    log = tmp_path_factory.mktemp("flower") / "flower.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            env={**env, **environment},
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Flower(port, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                running.get("/")
                break
            except OSError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield running
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        server.stop()


@pytest.mark.parametrize("path", ["/", "/api/workers", "/api/tasks"])
def test_flower_answers_only_with_its_credentials(flower: Flower, path: str) -> None:
    assert flower.get(path, f"{FLOWER_USER}:{FLOWER_PASSWORD}") == 200
    assert flower.get(path) == 401
    assert flower.get(path, f"{FLOWER_USER}:wrong") == 401


def test_flower_logs_the_broker_url_masked(flower: Flower) -> None:
    logs = flower.log.read_text()
    assert re.search(r"Broker: \S+://:\*\*@127\.0\.0\.1:\d+/0", logs), logs
    assert REDIS_PASSWORD not in logs and FLOWER_PASSWORD not in logs
