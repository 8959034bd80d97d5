"""A password-protected Redis works for the client, the workers and the CLI, and its password
is never printed: not in worker logs (Celery's banner shows the URL masked), not in CLI output
or errors, not in a settings repr."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator import Client
from orchestrator.config.settings import Settings
from orchestrator.local import LocalRedis, LocalWorker
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, run_cli, scripted, start_workers

# Distinctive, so that finding it anywhere is a leak and nothing else.
PASSWORD = f"pw-{secrets.token_hex(20)}"
OTHER_PASSWORD = f"wrong-{secrets.token_hex(20)}"
WIDE = {"COLUMNS": "200"}  # Rich wraps at the terminal width; keep each line whole


@dataclass
class Protected:
    server: LocalRedis
    workers: list[LocalWorker]
    log_dir: Path

    @property
    def url(self) -> str:
        return self.server.url

    def env(self) -> dict[str, str]:
        return {**FAST_TIMINGS, **WIDE, "ORCHESTRATOR_REDIS_URL": self.url}


@pytest.fixture(scope="module")
def protected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Protected]:
    server = LocalRedis(password=PASSWORD)
    log_dir = tmp_path_factory.mktemp("password-logs")
    workers = start_workers(
        {**FAST_TIMINGS, "ORCHESTRATOR_REDIS_URL": server.url}, ["pw1"], log_dir, concurrency=4
    )
    yield Protected(server, workers, log_dir)
    for worker in workers:
        worker.stop()
    server.stop()


def assert_no_password(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text and OTHER_PASSWORD not in text, text


def test_the_url_carries_the_password_and_redis_requires_it(protected: Protected) -> None:
    import redis

    assert f":{PASSWORD}@" in protected.url
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=protected.server.port).ping()


def test_a_client_runs_a_map_reduce_through_the_protected_redis(protected: Protected) -> None:
    client = Client(redis_url=protected.url)
    handle = client.map_reduce("Echo", items(3), scripted("m"), scripted("r"), max_concurrent=2)
    result = handle.result(timeout=60)
    assert handle.status().state == "succeeded" and result.all_succeeded()
    assert client.workers() == [protected.workers[0].hostname]


def test_every_cli_command_works_and_prints_no_password(protected: Protected) -> None:
    env = protected.env()
    submitted = run_cli(
        "submit", "map-reduce", "--task", "Shout", "--output", "json", env=env, stdin="a\nb\n"
    )
    assert submitted.returncode == 0, submitted.stderr
    run_id = json.loads(submitted.stdout)["run_id"]
    runs = [submitted]
    runs.append(run_cli("status", run_id, env=env))
    runs.append(run_cli("status", run_id, "--output", "json", env=env))
    runs.append(run_cli("events", run_id, "--no-follow", env=env))
    runs.append(run_cli("tools", env=env))
    runs.append(run_cli("cancel", run_id, env=env))
    # --redis-url wins over a variable that names no Redis at all.
    elsewhere = {**env, "ORCHESTRATOR_REDIS_URL": "redis://127.0.0.1:9/0"}
    runs.append(run_cli("--redis-url", protected.url, "status", run_id, env=elsewhere))
    for done in runs:
        assert done.returncode == 0, (done.args, done.stdout, done.stderr)
        assert_no_password(done.stdout, done.stderr)
    status, status_json, events, tools, cancel, by_flag = (done.stdout for done in runs[1:])
    assert f"run {run_id} (map_reduce): succeeded" in status
    assert json.loads(status_json)["state"] == "succeeded"
    assert json.loads(events.splitlines()[-1])["type"] == "RunEnd"
    assert "echo (local)" in tools
    assert "had already ended" in cancel
    assert f"run {run_id} (map_reduce): succeeded" in by_flag
    missing = run_cli("plans", "show", "nobody", env=env)
    assert missing.returncode == 1 and "nobody has no plan yet" in missing.stderr
    assert_no_password(missing.stdout, missing.stderr)


def single_error_line(done: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The one ``error:`` line a failing command prints on stderr, with no traceback; ``code``
    is 1 for a runtime error, 2 for a usage error."""
    assert done.returncode == code, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert_no_password(done.stdout, done.stderr)
    return lines[0]


def test_a_refused_password_is_reported_at_once_not_retried_as_an_outage(
    protected: Protected,
) -> None:
    import redis

    from orchestrator.state.connection import redis_client

    admin = redis.Redis.from_url(protected.url)

    def connections() -> int:
        return int(admin.info("stats")["total_connections_received"])

    before = connections()
    with pytest.raises(redis.AuthenticationError):
        redis_client(protected.url.replace(PASSWORD, OTHER_PASSWORD)).ping()
    # One connection, refused once: an outage would have been retried on new connections.
    assert connections() - before == 1


def test_a_wrong_password_is_one_error_line_naming_neither_password(protected: Protected) -> None:
    wrong = protected.url.replace(PASSWORD, OTHER_PASSWORD)
    by_variable = run_cli("status", "0" * 32, env={**WIDE, "ORCHESTRATOR_REDIS_URL": wrong})
    by_flag = run_cli("--redis-url", wrong, "tools", env=protected.env())
    for done in (by_variable, by_flag):
        line = single_error_line(done)
        assert "AuthenticationError: invalid username-password pair" in line


def test_a_malformed_url_is_named_by_its_scheme_without_its_password(
    protected: Protected,
) -> None:
    malformed = f"http://:{PASSWORD}@127.0.0.1:{protected.server.port}/0"
    by_variable = run_cli("status", "0" * 32, env={**WIDE, "ORCHESTRATOR_REDIS_URL": malformed})
    by_flag = run_cli("--redis-url", malformed, "tools", env=protected.env())
    assert single_error_line(by_variable, 2).startswith(
        "error: ORCHESTRATOR_REDIS_URL: the URL has scheme 'http'"
    )
    assert single_error_line(by_flag, 2).startswith("error: --redis-url: the URL has scheme 'http'")


def test_settings_and_the_client_show_urls_with_the_password_masked(
    protected: Protected,
) -> None:
    settings = Settings(
        redis_url=protected.url,
        broker_url=f"amqp://guest:{PASSWORD}@127.0.0.1:5672//",
        result_backend=protected.url,
    )
    client = Client(redis_url=protected.url)
    for shown in (repr(settings), str(settings), repr(client.settings)):
        assert f"redis://:**@127.0.0.1:{protected.server.port}/0" in shown
        assert_no_password(shown)
    assert "amqp://guest:**@127.0.0.1:5672//" in repr(settings)


def test_worker_logs_show_the_url_masked_and_never_the_password(protected: Protected) -> None:
    # A run first, so that the logs hold task lines as well as the banner.
    client = Client(redis_url=protected.url)
    handle = client.map_reduce("Log", items(2), scripted("m"), scripted("r"))
    handle.result(timeout=60)
    logs = "".join(path.read_text() for path in protected.log_dir.glob("*.log"))
    assert f"Task tasks.agents.run_member[{handle.id}-m0] received" in logs
    assert f"results:     redis://:**@127.0.0.1:{protected.server.port}/0" in logs
    assert_no_password(logs)


def test_the_demo_on_a_protected_redis_never_prints_the_password(protected: Protected) -> None:
    done = run_cli(
        "--redis-url", protected.url, "demo", "--workers", "1", env=protected.env(), timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Using the Redis at redis://:**@127.0.0.1:{protected.server.port}/0" in done.stdout
    assert "Mapper outputs (12)" in done.stdout
    assert_no_password(done.stdout, done.stderr)
    found = re.search(r"logs in (\S+)\)", done.stdout)
    assert found is not None, done.stdout
    logs = "".join(path.read_text() for path in Path(found.group(1)).glob("*.log"))
    assert "redis://:**@127.0.0.1" in logs
    assert_no_password(logs)
