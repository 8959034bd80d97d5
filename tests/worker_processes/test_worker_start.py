"""A worker starts whole or not at all: real ``celery worker`` processes, bad and good.

A worker that cannot serve what it is configured for (a tool module that does not import, a
malformed Redis URL) must exit at once, non-zero, with one ``error:`` line and no traceback,
instead of starting without its tools or its watchdog.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import redis

from orchestrator.config.celery_config import QUEUES
from orchestrator.local import LocalRedis, LocalWorker, wait_for_workers, worker_command

ROOT = Path(__file__).resolve().parents[2]


def worker_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without its ``ORCHESTRATOR_*`` settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    return {**env, **extra}


def run_worker(env: dict[str, str], timeout_s: float = 60) -> tuple[int, str, str]:
    """Start a worker on every queue; its exit code, stdout and stderr. A worker that is still
    running after ``timeout_s`` started instead of refusing to: it is killed and the test
    fails."""
    process = subprocess.Popen(
        worker_command(QUEUES, "threads", 2, ["--without-gossip", "--without-mingle"]),
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"the worker started instead of exiting:\n{stdout}\n{stderr}")
    return process.returncode, stdout, stderr


def assert_refused(env: dict[str, str], *cause: str) -> str:
    """The worker exits non-zero with one ``error:`` line naming ``cause``; no traceback."""
    code, stdout, stderr = run_worker(env)
    assert code != 0, (stdout, stderr)
    assert "Traceback" not in stdout + stderr, stdout + stderr
    errors = [line for line in (stdout + stderr).splitlines() if line.startswith("error:")]
    assert len(errors) == 1, (stdout, stderr)
    assert errors[0] in stderr.splitlines()
    for part in cause:
        assert part in errors[0]
    return errors[0]


def test_a_tool_module_that_does_not_exist(redis_server: LocalRedis) -> None:
    env = worker_env(
        {"ORCHESTRATOR_REDIS_URL": redis_server.url, "ORCHESTRATOR_TOOL_MODULES": "nope.tools"}
    )
    line = assert_refused(env, "ORCHESTRATOR_TOOL_MODULES", "'nope.tools'")
    assert line == (
        "error: ORCHESTRATOR_TOOL_MODULES: cannot import 'nope.tools': No module named 'nope'"
    )


def test_a_tool_module_that_raises_on_import(redis_server: LocalRedis, tmp_path: Path) -> None:
    (tmp_path / "broken_tools.py").write_text('raise RuntimeError("no API key for the tools")\n')
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    env = worker_env(
        {
            "ORCHESTRATOR_REDIS_URL": redis_server.url,
            "ORCHESTRATOR_TOOL_MODULES": "tests.registered.tools_demo,broken_tools",
            "PYTHONPATH": path,
        }
    )
    assert_refused(
        env, "ORCHESTRATOR_TOOL_MODULES", "'broken_tools'", "RuntimeError: no API key for the tools"
    )


def test_a_redis_url_without_a_scheme() -> None:
    env = worker_env({"ORCHESTRATOR_REDIS_URL": "notaurl"})
    assert_refused(env, "ORCHESTRATOR_REDIS_URL", "no scheme")


def test_a_bad_url_is_named_by_its_scheme_only() -> None:
    env = worker_env({"ORCHESTRATOR_RESULT_BACKEND": "http://reader:hunter2@example.invalid/0"})
    line = assert_refused(env, "ORCHESTRATOR_RESULT_BACKEND", "'http'")
    assert "hunter2" not in line


def test_a_good_worker_starts(redis_server: LocalRedis, tmp_path: Path) -> None:
    env = worker_env(
        {
            "ORCHESTRATOR_REDIS_URL": redis_server.url,
            "ORCHESTRATOR_TOOL_MODULES": "tests.registered.tools_demo",
        }
    )
    worker = LocalWorker("start-check", env, concurrency=2, log_path=tmp_path / "worker.log")
    try:
        wait_for_workers(redis.Redis.from_url(redis_server.url), [worker.hostname])
        assert worker.process.poll() is None
    finally:
        worker.stop()
    log = (tmp_path / "worker.log").read_text()
    assert "Traceback" not in log, log
    assert not [line for line in log.splitlines() if line.startswith("error:")], log


def test_the_worker_command_refuses_to_detach_and_reads_celery_worker_variables() -> None:
    """``workers.worker_main`` is ``celery -A workers.app worker`` without Celery's plugins:
    ``CELERY_WORKER_*`` variables set its options as they set celery's, and ``-D``, which would
    leave no worker (Celery's detach runs ``python -m celery`` again, without the app), is a
    usage error."""
    command = worker_command(QUEUES, "threads", 2)
    detached = subprocess.run(
        [*command, "-D"], env=worker_env({}), cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert detached.returncode == 2 and "-D/--detach is not supported" in detached.stderr
    # A bad pool named by the variable (the command line names none) is refused before start.
    without_pool = [arg for arg in command if arg not in ("-P", "threads")]
    bad_pool = worker_env({"CELERY_WORKER_POOL": "nosuchpool"})
    refused = subprocess.run(
        without_pool, env=bad_pool, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2 and "'nosuchpool' is not one of" in refused.stderr
