"""Starting processes from the zygote (``tests/zygote.py``): ``start`` and ``run`` stand in for
``subprocess.Popen`` and ``subprocess.run`` where a fork of it can (``Zygote.can_start``), and
call them where it cannot."""

from __future__ import annotations

import atexit
import io
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from tests.zygote import ROOT

READ_AT_START = (
    "PYTHON", "LD_", "LC_", "LANG", "TZ", "SETUPTOOLS_USE_DISTUTILS", "OPENSSL_", "PSUTIL_",
)  # fmt: skip
"""Variables read before or below what the zygote can see: by the interpreter as it starts (its
``.pth`` files too) and by C code during the imports (OpenSSL, psutil). With those the zygote
saw its imports read through ``os.environ`` (it reports them when ready; the project reads its
own, ``ORCHESTRATOR_*``, only after the fork), a process given other values than the zygote's
starts afresh."""


ENABLED = os.environ.get("ORCHESTRATOR_TEST_ZYGOTE", "1") != "0"
"""``ORCHESTRATOR_TEST_ZYGOTE=0`` starts every process afresh, e.g. to rule the zygote out."""

BASE_ENVIRONMENT = dict(os.environ)
"""This process's environment as the suite started (``conftest.py`` imports this module first)."""

ANSWER_S = 60
"""How long the zygote may take to answer a fork or a signal (it answers in milliseconds; this
is for a machine under load, and a zygote that is gone fails the test instead of hanging it)."""


class ZygoteProcess:
    """A child of the zygote, as much of ``subprocess.Popen`` as the tests use (thread-safe, as
    Popen: one thread may wait while another signals)."""

    def __init__(self, args: Sequence[str], connection: socket.socket) -> None:
        self.args = list(args)
        self._connection = connection
        self._buffer = b""
        self._lock = threading.Lock()
        self.returncode: int | None = None
        started = self._line(ANSWER_S)
        assert started is not None, "the zygote did not answer"
        self._raise_error(started)
        self.pid = int(started.split()[1])

    def _line(self, timeout: float | None) -> str | None:
        """The zygote's next line, or None if none came within ``timeout``; an ``exit`` line
        is taken in on the way (it may come before the answer to a signal)."""
        while True:
            while b"\n" not in self._buffer:
                ready, _, _ = select.select([self._connection], [], [], timeout)
                if not ready:
                    return None
                data = self._connection.recv(4096)
                assert data, f"the zygote ended without a word on its child ({self.args})"
                self._buffer += data
            line, self._buffer = self._buffer.split(b"\n", 1)
            if not line.startswith(b"exit "):
                return line.decode()
            self.returncode = int(line.split()[1])
            self._connection.close()
            return None

    def poll(self) -> int | None:
        if self._lock.acquire(blocking=False):  # as Popen: a thread waiting answers for it
            try:
                if self.returncode is None:
                    self._line(0)
            finally:
                self._lock.release()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            left = 0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic()))
            with self._lock:  # held a tenth of a second at most: a signal gets its turn
                if self.returncode is None:
                    self._line(left)
            if self.returncode is None and deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Signal the child through the zygote, which has not reaped it (a recycled pid is
        never signalled); a child that has ended is not signalled, as with Popen."""
        with self._lock:
            if self.returncode is None:
                self._connection.sendall(f"signal {int(sig)}\n".encode())
                while self.returncode is None:
                    answer = self._line(ANSWER_S)
                    assert answer is not None or self.returncode is not None, "no answer"
                    if answer is not None:
                        self._raise_error(answer)
                        break

    @staticmethod
    def _raise_error(answer: str) -> None:
        """The zygote's ``error ERRNO`` as the ``OSError`` Popen would raise here."""
        if answer.startswith("error "):
            code = int(answer.split()[1])
            raise OSError(code, os.strerror(code))

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Zygote:
    """A zygote process of this test process, and children started from it."""

    def __init__(self) -> None:
        self.path = os.path.join(tempfile.mkdtemp(prefix="zygote-"), "socket")
        # The environment this process started with, not the one of the test that happens to
        # start the zygote (it may set OTEL_* or TZ for its block): every later start compares
        # with it.
        self._environment = dict(BASE_ENVIRONMENT)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.zygote", self.path],
            env=self._environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            start_new_session=True,  # a Ctrl-C of the tests is not its: it ends at their end
        )
        assert self._process.stdout is not None
        ready = [b""]
        while ready[0] != b"ready":  # what an import may have printed before comes first
            line = self._process.stdout.readline()
            assert line, "the zygote ended before it was ready"
            ready = line.split(maxsplit=1) or [b""]
        self.read_at_import = frozenset(json.loads(ready[1]))

    def can_start(self, args: Sequence[str], env: Mapping[str, str]) -> bool:
        """Whether a fork stands in for ``exec(args)`` with ``env``: this interpreter running
        a module or code, from the zygote's directory, started as the zygote was."""
        if len(args) < 2 or args[0] != sys.executable or args[1] not in ("-m", "-c"):
            return False
        if Path.cwd() != ROOT:
            return False
        names = {*env, *self._environment}
        return not any(
            (name.startswith(READ_AT_START) or name in self.read_at_import)
            and env.get(name) != self._environment.get(name)
            for name in names
        )

    def start(
        self, args: Sequence[str], env: Mapping[str, str], streams: Sequence[int], new_session: bool
    ) -> ZygoteProcess:
        """Fork a child running ``args`` with exactly ``env`` and ``streams`` (the file
        descriptors of its stdin, stdout and stderr)."""
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(self.path)
        request = {"args": list(args[1:]), "env": dict(env), "new_session": new_session}
        message = json.dumps(request).encode() + b"\n"
        sent = socket.send_fds(connection, [message], list(streams))
        connection.sendall(message[sent:])
        return ZygoteProcess(args, connection)

    def close(self) -> None:
        """End the zygote (its children live on: they are their starters' to stop)."""
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            self._process.wait()
        shutil.rmtree(os.path.dirname(self.path), ignore_errors=True)


_zygote: Zygote | None = None
_lock = threading.Lock()


def zygote() -> Zygote:
    """This test process's zygote, started at the first call."""
    global _zygote
    with _lock:
        if _zygote is None:
            _zygote = Zygote()
            atexit.register(_zygote.close)
        return _zygote


def _fd(stream: int | IO[Any] | None, default: int) -> tuple[int, bool]:
    """The descriptor for a Popen-style stream argument, and whether it was opened here."""
    if stream is None:
        return default, False
    if stream in (subprocess.PIPE, subprocess.STDOUT):
        raise ValueError("a fork's streams are files or inherited, never pipes")
    if stream == subprocess.DEVNULL:
        return os.open(os.devnull, os.O_RDWR), True
    if isinstance(stream, int):
        return stream, False
    return stream.fileno(), False


def _fork_from(args: Sequence[str], env: Mapping[str, str]) -> Zygote | None:
    """The zygote to fork ``args`` from, or None where only ``exec`` will do."""
    if not ENABLED:
        return None
    forks = zygote()
    return forks if forks.can_start(args, env) else None


def start(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
    start_new_session: bool = False,
) -> ZygoteProcess | subprocess.Popen[bytes]:
    """``subprocess.Popen(args, env=env, stdout=..., stderr=..., start_new_session=...)``,
    forked from the zygote when a fork can stand in for it (``Zygote.can_start``)."""
    environment = dict(os.environ if env is None else env)
    forks = _fork_from(args, environment)
    if forks is None:
        return subprocess.Popen(
            args,
            env=environment,
            stdout=stdout,
            stderr=stderr,
            start_new_session=start_new_session,
        )
    stdin_fd, opened_in = _fd(subprocess.DEVNULL, 0)
    stdout_fd, opened_out = _fd(stdout, 1)
    stderr_fd, opened_err = (stdout_fd, False) if stderr == subprocess.STDOUT else _fd(stderr, 2)
    try:
        return forks.start(args, environment, [stdin_fd, stdout_fd, stderr_fd], start_new_session)
    finally:
        for fd, opened in ((stdin_fd, opened_in), (stdout_fd, opened_out), (stderr_fd, opened_err)):
            if opened:
                os.close(fd)


def _text(data: bytes) -> str:
    """``data`` read as ``subprocess.run(text=True)`` reads a stream (universal newlines)."""
    return io.TextIOWrapper(io.BytesIO(data)).read()


def run(
    args: Sequence[str], env: Mapping[str, str], stdin: str = "", timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(args, input=stdin, capture_output=True, text=True, env=env,
    timeout=timeout)``, forked from the zygote when it can be."""
    forks = _fork_from(args, env)
    if forks is None:
        return subprocess.run(
            args, input=stdin, capture_output=True, text=True, env=dict(env), timeout=timeout
        )
    # Files, not pipes: nothing here has to read while the child writes.
    with (
        tempfile.TemporaryFile() as given,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        given.write(stdin.encode())
        given.seek(0)
        child = forks.start(args, env, [given.fileno(), out.fileno(), err.fileno()], False)
        try:
            code = child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            raise
        out.seek(0)
        err.seek(0)
        output, errors = _text(out.read()), _text(err.read())
        return subprocess.CompletedProcess(list(args), code, output, errors)
