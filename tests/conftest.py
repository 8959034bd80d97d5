"""Fixtures: a private redis-server per session (free port, never 6379) and real
``celery worker`` processes. Timings are short so that lost members are recovered in seconds.

``ORCHESTRATOR_TEST_BROKER=rabbitmq`` runs the suite with a private RabbitMQ node as the broker
(``tests/deploy/rabbitmq.py``); run state and results stay in Redis. The session's workers get a
virtual host of their own, and every other test (one that starts its own Redis and workers)
gets a fresh one in ``ORCHESTRATOR_BROKER_URL``, which its workers and clients inherit."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import orchestrator.local
from orchestrator.local import LocalRedis, LocalWorker
from tests import forks
from tests.deploy.rabbitmq import LocalRabbitMQ, start_or_skip
from tests.helpers import environment, start_workers

BROKER_VARIABLE = "ORCHESTRATOR_BROKER_URL"

FAST_TIMINGS = {
    "ORCHESTRATOR_LEASE_S": "2",
    "ORCHESTRATOR_HEARTBEAT_S": "0.3",
    "ORCHESTRATOR_SWEEP_S": "0.3",
    "ORCHESTRATOR_TOOL_MODULES": "tests.registered.tools_demo",
    "ORCHESTRATOR_STRATEGY_MODULES": "tests.registered.strategies",
    "ORCHESTRATOR_MODULES": (
        "tests.registered.reducers,tests.registered.agents_demo,tests.registered.framework_agents"
    ),
    # Declared, never called: port 9 is the discard service, nothing answers there.
    "ORCHESTRATOR_ENDPOINTS": '{"declared": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}}',
    "ORCHESTRATOR_REMOTE_START_TIMEOUT_S": "2",
    "ORCHESTRATOR_PROVIDER_LIMITS": '{"scripted:pooled": {"max_concurrent": 2}}',
}


# Workers forked from a process that imported the project once (tests/zygote.py).
orchestrator.local.start_process = forks.start

TEST_BROKER = os.environ.get("ORCHESTRATOR_TEST_BROKER", "redis").lower()
ON_RABBITMQ = TEST_BROKER == "rabbitmq"
if TEST_BROKER not in ("redis", "rabbitmq"):
    raise pytest.UsageError(
        f"ORCHESTRATOR_TEST_BROKER must be redis or rabbitmq, not {TEST_BROKER!r}"
    )


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile`` spreads the modules as ``tests/parallel.py`` says."""
    if config.getvalue("dist") != "loadfile":
        return None
    from tests.parallel import ModuleScheduling

    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist worker, the longest modules first (every worker sorts alike, as xdist
    requires): ``tests/parallel.py``."""
    if hasattr(config, "workerinput"):
        from tests.parallel import longest_first

        longest_first(items)


@pytest.fixture(scope="session")
def rabbitmq_node() -> Iterator[LocalRabbitMQ]:
    """One private RabbitMQ node for the session (it takes seconds to start)."""
    node = start_or_skip()
    yield node
    node.stop()


@pytest.fixture(autouse=True)
def _broker_of_the_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """On RabbitMQ, a test that does not use the session's workers gets a virtual host of its
    own: workers of one Redis must not take the messages of another Redis's runs."""
    if not ON_RABBITMQ or "worker_env" in request.fixturenames:
        yield
        return
    node: LocalRabbitMQ = request.getfixturevalue("rabbitmq_node")
    with environment({BROKER_VARIABLE: node.vhost_url()}):
        yield


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalRedis]:
    server = LocalRedis()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def module_redis() -> Iterator[LocalRedis]:
    """A Redis of the module's own, which the session's workers do not serve: for tests that
    drive the run store or the broker themselves, or start the module's own workers."""
    server = LocalRedis()
    yield server
    server.stop()


@pytest.fixture
def private_redis() -> Iterator[LocalRedis]:
    """A Redis of the test's own, for tests that start, freeze or kill their own workers."""
    server = LocalRedis()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def worker_env(
    redis_server: LocalRedis, request: pytest.FixtureRequest
) -> Iterator[dict[str, str]]:
    env = {"ORCHESTRATOR_REDIS_URL": redis_server.url, **FAST_TIMINGS}
    if ON_RABBITMQ:
        node: LocalRabbitMQ = request.getfixturevalue("rabbitmq_node")
        env[BROKER_VARIABLE] = node.vhost_url(keep=True)
    with environment(env):
        yield env


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("worker-logs")


@pytest.fixture(scope="session")
def workers(worker_env: dict[str, str], log_dir: Path) -> Iterator[list[LocalWorker]]:
    """Three worker processes serving every queue, shared by the session."""
    started = start_workers(worker_env, ["w1", "w2", "w3"], log_dir)
    yield started
    for worker in started:
        worker.stop()


@pytest.fixture
def client(worker_env: dict[str, str], workers: list[LocalWorker]):  # type: ignore[no-untyped-def]
    from orchestrator import Client

    return Client(redis_url=worker_env["ORCHESTRATOR_REDIS_URL"])
