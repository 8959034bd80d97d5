"""The image and ``docker-compose.yml`` run, checked without a Docker engine.

What the Dockerfile puts in the image is staged into a fresh directory and venv
(``tests/deploy/image_build.py`` reads its instructions and ``.dockerignore``), with a tool package
added to the build context the way the Dockerfile documents (``TOOL_PACKAGES``). Every service's
command then runs from there as composed (its environment interpolated from a .env), each in a
"container" of its own hostname (``tests/deploy/containers.py``), against a private Redis with a
password, two ``agents`` replicas among them; a map-reduce, a branches run and a tool-calling
agent run must succeed across them, and Flower must answer only with its credentials.

Building the venv installs every dependency afresh; it is most of this module's time.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from orchestrator import AgentSpec, Client, ModelConfig
from orchestrator.local import LocalRedis, free_port
from orchestrator.state.events import AgentStart
from orchestrator.state.presence import live_workers
from tests.deploy import containers
from tests.deploy.compose_file import (
    IMAGE_SERVICES,
    ROOT,
    SERVICES,
    WORKERS,
    build_args,
    interpolate,
    service_environment,
)
from tests.deploy.containers import Container
from tests.deploy.image_build import DockerIgnore, Image, build

pytestmark = pytest.mark.timeout(900)  # the first test builds the image's venv

REDIS_PASSWORD = secrets.token_hex(16)
FLOWER_CREDENTIALS = f"admin:flower-{secrets.token_hex(12)}"
AGENTS_REPLICAS = 2
# What a user writes in the .env file beside docker-compose.yml.
DOTENV = {
    "REDIS_PASSWORD": REDIS_PASSWORD,
    "FLOWER_BASIC_AUTH": FLOWER_CREDENTIALS,
    "TOOL_PACKAGES": "./vendor/imagetools",
    "ORCHESTRATOR_TOOL_MODULES": "imagetools",
}
# A user's tool distribution in the build context, named by TOOL_PACKAGES, and the .env file
# itself, which must stay out of the image.
USER_FILES = {
    "vendor/imagetools/pyproject.toml": """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "imagetools"
version = "1.0"
""",
    "vendor/imagetools/imagetools/__init__.py": '''\
"""Tools that say which container ran them."""

import socket

from orchestrator import tool


@tool(remote=True)
def where() -> str:
    """The hostname of the tools worker that ran this call."""
    return socket.gethostname()


@tool
def here() -> str:
    """The hostname of the agents worker that ran this call."""
    return socket.gethostname()
''',
    ".env": "".join(f"{name}={value}\n" for name, value in DOTENV.items()),
}


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """The image, staged; every image service is built the same way."""
    args = build_args("agents", DOTENV)
    for name in IMAGE_SERVICES:
        assert SERVICES[name]["build"] == SERVICES["agents"]["build"], name
    staging = tmp_path_factory.mktemp("image")
    return build(ROOT, staging / "root", args, USER_FILES, log=staging / "build.log")


def in_image(image: Image, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code`` in the image, from ``/`` so that only what is installed imports."""
    return subprocess.run(
        [str(image.bin / "python"), "-c", code],
        cwd=image.root,
        env=image.process_env(),
        capture_output=True,
        text=True,
    )


def test_every_package_of_the_checkout_is_installed_and_the_env_file_is_not_copied(
    image: Image,
) -> None:
    packages = sorted(
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if path.parent.name not in {"tests", "benchmarks", "docs_gen", "examples"}
    )
    assert {"orchestrator", "workers", "tasks", "learners"} <= set(packages)
    imports = "; ".join(f"import {name}" for name in [*packages, "imagetools"])
    done = in_image(image, imports)
    assert done.returncode == 0, done.stderr
    assert not (image.workdir / ".env").exists()
    assert REDIS_PASSWORD not in "".join(
        path.read_text(errors="replace") for path in image.workdir.rglob("*") if path.is_file()
    )


def test_dockerignore_patterns_read_as_docker_reads_them() -> None:
    ignore = DockerIgnore("*.pyc\n**/__pycache__\nbuild\ndocs/**/*.md\n!docs/keep.md\n# .env\n")
    assert ignore.excludes("top.pyc") and not ignore.excludes("pkg/deep.pyc")  # anchored
    assert ignore.excludes("__pycache__/a") and ignore.excludes("pkg/sub/__pycache__/a.pyc")
    assert ignore.excludes("build/lib/x.py")  # below an excluded directory
    assert ignore.excludes("docs/a.md") and ignore.excludes("docs/x/y/a.md")
    assert not ignore.excludes("docs/keep.md")  # the later exception wins
    assert not ignore.excludes(".env")  # a comment is no pattern
    shipped = DockerIgnore((ROOT / ".dockerignore").read_text())
    assert shipped.excludes(".env") and shipped.excludes("orchestrator/__pycache__/x.pyc")
    assert not shipped.excludes("orchestrator/state/lua/budget.lua")


@dataclass
class Deployment:
    """The composed services, running: ``containers[service]`` lists its replicas."""

    redis_url: str
    containers: dict[str, list[Container]]
    flower_port: int

    def nodes(self, service: str) -> list[str]:
        return [container.node for container in self.containers[service]]

    def hostnames(self, service: str) -> set[str]:
        return {container.hostname for container in self.containers[service]}

    def logs(self) -> str:
        return "\n".join(
            f"--- {name} {c.hostname} (exit {c.process.poll()}):\n{c.log.read_text()[-3000:]}"
            for name, replicas in self.containers.items()
            for c in replicas
        )

    def flower(self, path: str, credentials: str | None = None) -> tuple[int, bytes]:
        """Flower's status and body for ``GET path``, with ``user:password`` if given."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.flower_port}{path}")
        if credentials is not None:
            token = base64.b64encode(credentials.encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as refused:
            return refused.code, b""


def composed(name: str, redis_port: int) -> tuple[list[str], dict[str, str]]:
    """Service ``name``'s command and environment, with the Redis host ``redis`` (the compose
    network's name for it) pointed at the private server."""
    environment = service_environment(name, DOTENV)
    url = environment["ORCHESTRATOR_REDIS_URL"]
    assert url == f"redis://:{REDIS_PASSWORD}@redis:6379/0"
    environment["ORCHESTRATOR_REDIS_URL"] = url.replace("@redis:6379", f"@127.0.0.1:{redis_port}")
    command = [interpolate(str(arg), DOTENV) for arg in SERVICES[name]["command"]]
    return command, environment


@pytest.fixture(scope="module")
def deployment(image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """``docker compose up --scale agents=2``, Redis aside (a private one on this machine)."""
    if containers.unshare_prefix() is None:
        pytest.skip("unshare cannot give processes hostnames of their own on this machine")
    server = LocalRedis(password=REDIS_PASSWORD)
    logs = tmp_path_factory.mktemp("services")
    running: dict[str, list[Container]] = {}
    flower_port = free_port()
    try:
        for name in IMAGE_SERVICES:
            command, environment = composed(name, server.port)
            if name == "flower":
                # Each container has its own network: here, a free port, on loopback only.
                assert "--port=5555" in command
                command = [a.replace("--port=5555", f"--port={flower_port}") for a in command]
                command.append("--address=127.0.0.1")
            replicas = AGENTS_REPLICAS if name == "agents" else 1
            running[name] = [
                containers.run(image, command, environment, logs / f"{name}-{i}.log")
                for i in range(replicas)
            ]
        up = Deployment(server.url, running, flower_port)
        wait_until_up(up)
        yield up
    finally:
        everything = [container for replicas in running.values() for container in replicas]
        for container in everything:  # all at once, as compose stops them
            container.terminate()
        for container in everything:
            container.stop()
        server.stop()


def wait_until_up(up: Deployment) -> None:
    """Until every worker has announced itself in Redis and Flower answers; a service that
    exits first fails the test with the logs."""
    client = redis.Redis.from_url(up.redis_url)
    nodes = {node for name in WORKERS for node in up.nodes(name)}
    deadline = time.monotonic() + 240  # a hang, not a performance bound
    while True:
        processes = [c for replicas in up.containers.values() for c in replicas]
        exited = [c for c in processes if c.process.poll() is not None]
        assert not exited, f"a service exited:\n{up.logs()}"
        if nodes <= set(live_workers(client)):
            try:
                up.flower("/")
                return
            except OSError:
                pass
        assert time.monotonic() < deadline, f"services not ready:\n{up.logs()}"
        time.sleep(0.2)


def scripted(name: str, script: list[dict[str, Any]], tools: list[str]) -> AgentSpec:
    model = ModelConfig(provider="scripted", options={"script": script})
    return AgentSpec(name=name, model=model, tools=tools)


CALL_BOTH: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "where", "arguments": {}}, {"name": "here", "arguments": {}}]},
    {"text": "done"},
]


def agent_hosts(handle: Any) -> set[str]:
    """The hostnames of the workers that ran the run's agents (``host:pid``)."""
    starts = [e for e in handle.events(follow=False) if isinstance(e, AgentStart)]
    return {start.worker.rsplit(":", 1)[0] for start in starts if start.worker}


def test_the_agents_replicas_are_distinct_nodes(deployment: Deployment) -> None:
    live = set(live_workers(redis.Redis.from_url(deployment.redis_url)))
    assert set(deployment.nodes("agents")) <= live
    assert len(set(deployment.nodes("agents"))) == AGENTS_REPLICAS


def test_a_map_reduce_runs_across_the_services(deployment: Deployment) -> None:
    client = Client(redis_url=deployment.redis_url)
    mapper = scripted("imagemapper", CALL_BOTH, ["where", "here"])
    reducer = AgentSpec(name="imagereducer", model=ModelConfig(provider="scripted"))
    items = [f"item-{i}" for i in range(8)]
    handle = client.map_reduce("Map", items, mapper, reducer, 4)
    result = handle.result(120)
    assert [o.outcome for o in result.map_outputs] == ["ok"] * len(items)
    assert all(o.tools_used == ["where", "here"] for o in result.map_outputs)
    assert result.reducer_output is not None and result.reducer_output.outcome == "ok"
    assert agent_hosts(handle) <= deployment.hostnames("agents")
    # The learner service learns from the mappers' records.
    deadline = time.monotonic() + 60
    while (plan := client.plan("imagemapper")) is None or plan.records_seen < len(items):
        assert time.monotonic() < deadline, f"the learner never learned: {plan}"
        time.sleep(0.1)


def test_a_branches_run_runs_across_the_services(deployment: Deployment) -> None:
    client = Client(redis_url=deployment.redis_url)
    configs = [
        scripted("imagebrancher", CALL_BOTH, ["where", "here"]).model_copy(
            update={"config_id": config_id}
        )
        for config_id in ("one", "two")
    ]
    handle = client.parallel_branches(configs, prompt="Which?")
    result = handle.result(120)
    assert [o.output.outcome for o in result.outcomes] == ["ok", "ok"]
    assert [o.output.tools_used for o in result.outcomes] == [["where", "here"]] * 2
    assert result.selected_index == 0
    assert agent_hosts(handle) <= deployment.hostnames("agents")


def test_tool_modules_in_the_image_run_on_the_tools_and_agents_services(
    deployment: Deployment,
) -> None:
    client = Client(redis_url=deployment.redis_url)
    spec = scripted("imagetooluser", CALL_BOTH, ["where", "here"])
    result = client.run_agent(spec, "go").result(60)
    where, here = [m.content for m in result.context if m.role == "tool"]  # in call order
    assert where in deployment.hostnames("tools")
    assert here in deployment.hostnames("agents")


@pytest.mark.parametrize("path", ["/", "/api/workers", "/api/tasks"])
def test_flower_answers_only_with_its_credentials(deployment: Deployment, path: str) -> None:
    assert deployment.flower(path, FLOWER_CREDENTIALS)[0] == 200
    assert deployment.flower(path)[0] == 401
    assert deployment.flower(path, "admin:wrong")[0] == 401


def test_flower_api_lists_every_worker_and_logs_no_password(deployment: Deployment) -> None:
    nodes = {node for name in WORKERS for node in deployment.nodes(name)}
    deadline = time.monotonic() + 60
    while True:
        status, body = deployment.flower("/api/workers?refresh=1", FLOWER_CREDENTIALS)
        assert status == 200
        if nodes <= set(json.loads(body)):
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.5)
    (flower,) = deployment.containers["flower"]
    logs = flower.log.read_text()
    assert re.search(r"Broker: \S+://:\*\*@127\.0\.0\.1:\d+/0", logs), logs
    assert REDIS_PASSWORD not in logs and FLOWER_CREDENTIALS.split(":")[1] not in logs
