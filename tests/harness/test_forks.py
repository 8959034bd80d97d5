"""The suite's processes forked from the zygote (tests/zygote.py) behave as ones started afresh:
exactly the environment given, the arguments, the streams, the exit status; and what a fork
cannot stand in for is started afresh."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests import forks
from tests.helpers import environment, parent_of, wait_for

pytestmark = pytest.mark.skipif(not forks.ENABLED, reason="ORCHESTRATOR_TEST_ZYGOTE=0")

BASE = forks.BASE_ENVIRONMENT
"""The environment the suite started with: what a test before these may have left in this
process's own (Celery's log set-up leaves ``CELERY_LOG_*``) changes nothing here."""

SHOW = """
import os, sys
print(sys.argv[1:], os.environ.get("GIVEN"), os.environ.get("PATH"), sys.stdin.read())
print("to stderr", file=sys.stderr)
raise SystemExit(int(sys.argv[1]))
"""


def test_a_fork_gets_exactly_its_environment_arguments_streams_and_exit_code() -> None:
    # The zygote has PATH (the suite's whole environment): a fork not given it has none.
    assert "PATH" in BASE and "PATH" not in forks.zygote().read_at_import
    env = {key: value for key, value in BASE.items() if key != "PATH"}
    done = forks.run([sys.executable, "-c", SHOW, "3", "x"], {**env, "GIVEN": "yes"}, "in")
    assert done.returncode == 3
    assert done.stdout == "['3', 'x'] yes None in\n"
    assert done.stderr == "to stderr\n"


def test_an_uncaught_exception_ends_a_fork_as_it_ends_python() -> None:
    done = forks.run([sys.executable, "-c", "raise ValueError('boom')"], dict(BASE))
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "ValueError: boom" in done.stderr


def test_a_module_runs_as_main() -> None:
    done = forks.run([sys.executable, "-m", "orchestrator.cli", "--help"], dict(BASE))
    assert done.returncode == 0 and "usage: orchestrator" in done.stdout


def test_a_killed_fork_reports_its_signal(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    code = f"import pathlib, time; pathlib.Path({str(ready)!r}).touch(); time.sleep(600)"
    child = forks.start([sys.executable, "-c", code], BASE, start_new_session=True)
    try:
        assert isinstance(child, forks.ZygoteProcess)
        wait_for(ready.exists, "the child started")
        assert child.poll() is None
        assert parent_of(child.pid) != os.getpid()  # the zygote's child: a fork
        assert os.getpgid(child.pid) == child.pid  # a session of its own
        child.terminate()
        assert child.wait(60) == -signal.SIGTERM
    finally:
        child.kill()


def test_children_that_end_as_they_are_signalled_are_not_an_error(tmp_path: Path) -> None:
    """The zygote signals a child it has not reaped: one that has just ended (reaped, its end
    not yet reported) is never a ``ProcessLookupError``, as it is never one for Popen."""
    go = tmp_path / "go"
    code = f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.01)"
    for _ in range(3):
        children = [forks.start([sys.executable, "-c", code], BASE) for _ in range(30)]
        go.touch()  # they all end at once, signalled until they have
        while any(child.poll() is None for child in children):
            for child in children:
                child.send_signal(signal.SIGCONT)
        assert [child.wait(60) for child in children] == [0] * 30
        go.unlink()


def test_threads_may_wait_on_one_child_together(tmp_path: Path) -> None:
    go = tmp_path / "go"
    code = f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.01)"
    child = forks.start([sys.executable, "-c", code], BASE)
    waiting = threading.Barrier(3)

    def wait() -> int:
        waiting.wait()
        return child.wait(60)

    with ThreadPoolExecutor(2) as pool:
        codes = [pool.submit(wait) for _ in range(2)]
        waiting.wait()
        time.sleep(0.2)  # both are inside wait() (a wait that came later must pass as well)
        go.touch()
        assert [code.result() for code in codes] == [0, 0]


def test_a_start_that_fails_midway_leaves_the_zygote_serving() -> None:
    with pytest.raises(ValueError, match="never pipes"):
        forks.start([sys.executable, "-c", "pass"], BASE, stdout=subprocess.PIPE)
    # A starter that connects and goes without a word, or sends half a request.
    for message in (b"", b'{"args": '):
        broken = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        broken.connect(forks.zygote().path)
        broken.sendall(message)
        broken.close()
    # One that stays silent, held open while others are served; a bad signal raises as Popen's.
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(forks.zygote().path)
    try:
        child = forks.start([sys.executable, "-c", "import time; time.sleep(600)"], BASE)
        with pytest.raises(OSError, match="Invalid argument"):
            child.send_signal(999)
        child.kill()
        assert child.wait(60) == -signal.SIGKILL
        served = forks.run([sys.executable, "-c", "print('served')"], dict(BASE))
        assert served.stdout == "served\n"
    finally:
        silent.close()


def test_output_is_read_with_universal_newlines_and_code_is_main() -> None:
    code = "import pickle, sys\ndef f(): pass\npickle.dumps(f)\nsys.stdout.write('a\\r\\nb\\rc')"
    done = forks.run([sys.executable, "-c", code], dict(BASE))
    assert (done.returncode, done.stdout) == (0, "a\nb\nc"), done.stderr


def test_what_changes_the_interpreter_start_is_started_afresh() -> None:
    env = {**BASE, "PYTHONOPTIMIZE": "1"}
    child = forks.start([sys.executable, "-c", "assert False"], env, stderr=subprocess.DEVNULL)
    assert isinstance(child, subprocess.Popen)
    assert child.wait(60) == 0  # -O: the assert is gone, as only a fresh interpreter does


def test_a_zygote_started_inside_a_tests_variables_serves_the_tests_after_it() -> None:
    with environment({"TZ": "JST-9", "OTEL_SERVICE_NAME": "x"}):
        inside = forks.Zygote()
    try:
        assert inside.can_start([sys.executable, "-c", "pass"], dict(BASE))
    finally:
        inside.close()


def test_what_a_preloaded_library_reads_at_import_is_started_afresh() -> None:
    code = "import time; print(time.tzname[0])"
    done = forks.run([sys.executable, "-c", code], {**BASE, "TZ": "JST-9"})
    assert done.stdout == "JST\n"
    # Read by Celery's imports, which the zygote saw: a fork would keep the zygote's value.
    assert "CELERY_WORKER_REVOKES_MAX" in forks.zygote().read_at_import
    given = {**BASE, "CELERY_WORKER_REVOKES_MAX": "7"}
    child = forks.start([sys.executable, "-c", "pass"], given)
    assert isinstance(child, subprocess.Popen)
    child.wait(60)


def test_what_c_code_reads_during_the_imports_is_started_afresh() -> None:
    """OpenSSL reads ``OPENSSL_CONF`` in C as ``ssl`` is imported: no ``os.environ`` read the
    zygote could see, so it is named among the variables read at start."""
    child = forks.start([sys.executable, "-c", "pass"], {**BASE, "OPENSSL_CONF": "/dev/null"})
    assert isinstance(child, subprocess.Popen)
    child.wait(60)


def test_what_only_a_later_step_reads_still_forks() -> None:
    """Celery's log set-up, run in a test's own process, leaves ``CELERY_LOG_LEVEL`` in its
    environment; the worker reads it after the fork, so starts after it still fork."""
    left = {**BASE, "CELERY_LOG_LEVEL": "40", "CELERY_LOG_FILE": ""}
    child = forks.start([sys.executable, "-c", "pass"], left)
    assert isinstance(child, forks.ZygoteProcess)
    assert child.wait(60) == 0


RECYCLED = """
import os, signal, sys
from tests import forks
from tests.helpers import wait_for

def pair():
    ended = forks.start([sys.executable, "-c", "pass"])
    wait_for(lambda: not os.path.exists(f"/proc/{ended.pid}"), "reaped, its end unread")
    with open("/proc/sys/kernel/ns_last_pid", "w") as last:  # this pid namespace's only
        last.write(str(ended.pid - 1))
    alive = forks.start([sys.executable, "-c", "import time; time.sleep(600)"])
    assert alive.pid == ended.pid, (alive.pid, ended.pid)
    return ended, alive

ended, alive = pair()
assert ended.poll() == 0  # its handle goes: the zygote keeps the new child's end to report
alive.terminate()
print("first", alive.wait(60))
ended, alive = pair()
ended.send_signal(signal.SIGTERM)  # the ended child's: it must not reach the new one
assert alive.poll() is None
alive.kill()
print("second", alive.wait(60))
"""


def test_a_handle_of_an_ended_child_never_touches_a_child_that_got_its_pid() -> None:
    """In a pid namespace of its own, where the next pid can be chosen: a new child gets the
    pid of one whose end its handle has not read yet."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run(["unshare", "-pf", "--mount-proc", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no pid namespace here (needs root): {probe.stderr.decode().strip()}")
    done = subprocess.run(
        ["unshare", "-pf", "--mount-proc", sys.executable, "-c", RECYCLED],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    )
    assert done.stdout == f"first {-signal.SIGTERM}\nsecond {-signal.SIGKILL}\n", done.stderr
