"""Fixtures: a private redis-server per session (free port, never 6379) and real
``celery worker`` processes. Timings are short so that lost members are recovered in seconds.

``ORCHESTRATOR_TEST_BROKER=rabbitmq`` runs the suite with a private RabbitMQ node as the broker
(``tests/rabbitmq.py``); run state and results stay in Redis. The session's workers get a
virtual host of their own, and every other test (one that starts its own Redis and workers)
gets a fresh one in ``ORCHESTRATOR_BROKER_URL``, which its workers and clients inherit."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.local import LocalRedis, LocalWorker, wait_for_workers
from tests.helpers import environment
from tests.rabbitmq import LocalRabbitMQ, start_or_skip

BROKER_VARIABLE = "ORCHESTRATOR_BROKER_URL"

FAST_TIMINGS = {
    "ORCHESTRATOR_LEASE_S": "2",
    "ORCHESTRATOR_HEARTBEAT_S": "0.3",
    "ORCHESTRATOR_SWEEP_S": "0.3",
    "ORCHESTRATOR_TOOL_MODULES": "tests.tools_demo",
    "ORCHESTRATOR_STRATEGY_MODULES": "tests.strategies",
    # Declared, never called: port 9 is the discard service, nothing answers there.
    "ORCHESTRATOR_ENDPOINTS": '{"declared": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}}',
    "ORCHESTRATOR_REMOTE_START_TIMEOUT_S": "2",
    "ORCHESTRATOR_PROVIDER_LIMITS": '{"scripted:pooled": {"max_concurrent": 2}}',
}


TEST_BROKER = os.environ.get("ORCHESTRATOR_TEST_BROKER", "redis").lower()
ON_RABBITMQ = TEST_BROKER == "rabbitmq"
if TEST_BROKER not in ("redis", "rabbitmq"):
    raise pytest.UsageError(
        f"ORCHESTRATOR_TEST_BROKER must be redis or rabbitmq, not {TEST_BROKER!r}"
    )


LONGEST_FIRST = (
    "tests.test_image",  # builds the image's venv: installs every dependency afresh
    "tests.test_secret_scan",
    "tests.test_rabbitmq",
    "tests.test_takeover_budget",
    "tests.test_run_footprint",
    "tests.test_cancel",
    "tests.test_multi_host",
    "tests.test_sentinel",
    "tests.test_learner_limits",
    "tests.test_learner_redelivery",
    "tests.test_learning",
    "tests.test_redis_cluster",
    "tests.test_run_state_model",
    "tests.test_watch",
    "tests.test_leases",
)
"""Modules whose tests take longest, started first under xdist so that none of them is the
last thing the run waits for (the order only changes the wall time, never a result)."""


@pytest.hookimpl(tryfirst=True)  # before xdist reads the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``make test`` runs ``-n 4 --dist loadgroup``), keep together the
    tests that share something costlier than a test: those of a module with module-scoped
    fixtures (its own Redis, workers or cluster, started once on one process) and those of the
    RabbitMQ node (one node for them all). The others spread one by one over the processes,
    each with its own Redis and workers (the session fixtures). An ``xdist_group`` mark a test
    sets itself wins. The modules of ``LONGEST_FIRST`` come first, each kept whole."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            group = shared_group(item)
            if group is not None:
                item.add_marker(pytest.mark.xdist_group(group))
    if hasattr(config, "workerinput"):  # an xdist worker: every worker sorts alike
        rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
        first = len(LONGEST_FIRST)
        items.sort(key=lambda item: rank.get(getattr(item, "module", None).__name__, first))


def shared_group(item: pytest.Item) -> str | None:
    """The xdist group of ``item``: ``rabbitmq``, its module's name, or None."""
    module = getattr(item, "module", None)
    if module is not None and module.__name__.startswith("tests.kombu_contract."):
        # kombu's tests, as kombu runs them: in their file's order (one depends on another).
        return str(module.__name__)
    names = getattr(item, "fixturenames", ())
    if "rabbitmq_node" in names:
        return "rabbitmq"
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs if info is not None else {}
    for name in names:
        if any(d.scope in ("module", "class") for d in definitions.get(name, ())):
            return item.module.__name__ if isinstance(item, pytest.Function) else item.nodeid
    return None


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


def start_workers(
    env: dict[str, str], names: list[str], log_dir: Path, concurrency: int = 8
) -> list[LocalWorker]:
    """Start one worker per name on every queue and wait until all have announced themselves."""
    import redis

    workers = [
        LocalWorker(name, env, concurrency=concurrency, log_path=log_dir / f"{name}.log")
        for name in names
    ]
    try:
        wait_for_workers(
            redis.Redis.from_url(env["ORCHESTRATOR_REDIS_URL"]), [w.hostname for w in workers]
        )
    except Exception:
        for worker in workers:
            worker.stop()
        raise
    return workers


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
