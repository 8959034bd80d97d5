"""The suite's processes forked from the zygote (tests/zygote.py) behave as ones started afresh:
exactly the environment given, the arguments, the streams, the exit status; and what a fork
cannot stand in for is started afresh."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests import forks
from tests.helpers import parent_of, wait_for

SHOW = """
import os, sys
print(sys.argv[1:], os.environ.get("GIVEN"), os.environ.get("NOT_GIVEN"), sys.stdin.read())
print("to stderr", file=sys.stderr)
raise SystemExit(int(sys.argv[1]))
"""


def test_a_fork_gets_exactly_its_environment_arguments_streams_and_exit_code() -> None:
    os.environ["NOT_GIVEN"] = "leaked"
    try:
        env = {key: value for key, value in os.environ.items() if key != "NOT_GIVEN"}
        done = forks.run([sys.executable, "-c", SHOW, "3", "x"], {**env, "GIVEN": "yes"}, "in")
    finally:
        del os.environ["NOT_GIVEN"]
    assert done.returncode == 3
    assert done.stdout == "['3', 'x'] yes None in\n"
    assert done.stderr == "to stderr\n"


def test_an_uncaught_exception_ends_a_fork_as_it_ends_python() -> None:
    done = forks.run([sys.executable, "-c", "raise ValueError('boom')"], dict(os.environ))
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "ValueError: boom" in done.stderr


def test_a_module_runs_as_main() -> None:
    done = forks.run([sys.executable, "-m", "orchestrator.cli", "--help"], dict(os.environ))
    assert done.returncode == 0 and "usage: orchestrator" in done.stdout


def test_a_killed_fork_reports_its_signal(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    code = f"import pathlib, time; pathlib.Path({str(ready)!r}).touch(); time.sleep(600)"
    child = forks.start([sys.executable, "-c", code], start_new_session=True)
    assert isinstance(child, forks.ZygoteProcess)
    wait_for(ready.exists, "the child started")
    assert child.poll() is None
    assert parent_of(child.pid) != os.getpid()  # the zygote's child: a fork
    assert os.getpgid(child.pid) == child.pid  # a session of its own
    child.terminate()
    assert child.wait(60) == -signal.SIGTERM


def test_what_changes_the_interpreter_start_is_started_afresh() -> None:
    env = {**os.environ, "PYTHONOPTIMIZE": "1"}
    child = forks.start([sys.executable, "-c", "assert False"], env, stderr=subprocess.DEVNULL)
    assert isinstance(child, subprocess.Popen)
    assert child.wait(60) == 0  # -O: the assert is gone, as only a fresh interpreter does
