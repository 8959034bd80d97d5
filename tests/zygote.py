"""Python processes forked from a parent that has imported the project already.

The suite starts about 200 ``celery worker`` processes and 80 runs of the ``orchestrator`` CLI.
Each, started afresh, spends most of its start importing Celery, kombu, redis-py, pydantic,
jsonschema, OpenTelemetry and the project (forking them instead cut the suite's CPU from 474 to
287 s on 2 cores). A zygote (one per test process, started at its first use) imports them once;
each process the tests start is a fork of it that sets its environment, working directory,
standard streams and ``sys.argv`` as ``exec`` would, then runs ``python -m MODULE`` or ``python
-c CODE`` as the interpreter does. What runs is the real thing (Celery's own worker main, the
CLI's ``main``); only the imports are shared. The project reads its settings
(``ORCHESTRATOR_*``) only after the fork, as at a fresh start; the few variables that the
interpreter or the preloaded libraries read at import (``PYTHON*``, ``LD_*``, the locale,
``TZ``, and those the zygote saw its imports read: ``CELERY_WORKER_*``, ``KOMBU_*``,
``OTEL_PROPAGATORS``...) make a process start afresh when they differ from the zygote's.

``tests/forks.py`` starts processes from it, and falls back to ``subprocess`` for whatever a
fork cannot stand in for: another program, a command under a prefix (``ip netns exec``), another
working directory, or such a variable (libfaketime's ``LD_PRELOAD``).
``ORCHESTRATOR_TEST_ZYGOTE=0`` switches it off. A fork's command line (``ps``,
``/proc/PID/cmdline``) and ``/proc/PID/environ`` are the zygote's: find the suite's processes by
``tests.zygote``.

Protocol (a Unix socket, one connection a child): a request is one JSON line with the file
descriptors of the child's standard streams passed beside it (``SCM_RIGHTS``); the zygote answers
``pid N`` at the fork, ``signalled`` to each ``signal N`` it is sent, and ``exit S`` (Popen's
``returncode``) when the child has ended.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import selectors
import signal
import socket
import sys
import threading
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

PRELOAD = (
    "celery.bin.base",
    "celery.bin.worker",
    "celery.worker.consumer",
    "celery.concurrency.thread",
    "celery.apps.worker",
    "celery.worker.components",
    "celery.loaders.app",
    "kombu.transport.redis",
    "redis",
    "pydantic",
    "jsonschema",
    "opentelemetry.sdk.trace",
    "orchestrator.cli.commands",
    "workers.runtime",
    "workers.startup",
)
"""What the zygote imports: libraries and project modules that read no settings at import
(``workers.app`` reads them, so each child imports it itself)."""

_STREAMS = 3


@dataclass(eq=False)
class _Requester:
    """One connection: a request being read, then its child's (``pid``) until either ends."""

    connection: socket.socket
    buffer: bytes = b""
    fds: list[int] = field(default_factory=list)
    pid: int | None = None
    ended: bool = False  # its child's end is reported: its pid is free for another child


class _Server:
    """The zygote's loop: forks on request, passes signals on, reports how each child ended.

    Signals go through the zygote, which has not yet reaped the child it signals (a child that
    has ended stays a zombie until it is reaped here), so a signal never meets a recycled pid,
    nor a child that ended a moment ago: as ``Popen.send_signal``, which has the same hold. No
    requester can block it: every connection is read as its data comes."""

    def __init__(self, path: str) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(64)
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_write, False)
        signal.set_wakeup_fd(self.wake_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.wake_read, selectors.EVENT_READ, "child")
        self.selector.register(sys.stdin, selectors.EVENT_READ, "parent")  # EOF: tests gone
        self.children: dict[int, _Requester | None] = {}  # not yet reaped: who asked for it
        self.requesters: set[_Requester] = set()

    def serve(self) -> dict[str, Any]:
        """Serve until the tests end; returns (in a forked child only) the child's request."""
        while True:
            for key, _ in self.selector.select():
                if key.data == "parent":
                    if not os.read(sys.stdin.fileno(), 4096):
                        os._exit(0)
                elif key.data == "child":
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_read, 4096)
                    self.reap()
                elif key.data == "accept":
                    connection, _ = self.listener.accept()
                    connection.setblocking(False)
                    requester = _Requester(connection)
                    self.requesters.add(requester)
                    self.selector.register(connection, selectors.EVENT_READ, requester)
                elif key.data.pid is None:
                    request = self.read_request(key.data)
                    if request is not None:
                        return request
                else:
                    self.command(key.data)

    def read_request(self, requester: _Requester) -> dict[str, Any] | None:
        """Take in what has come of a request; fork once it is whole. Returns the request in
        the child."""
        try:
            message, fds, _, _ = socket.recv_fds(requester.connection, 65536, _STREAMS)
        except OSError:
            message, fds = b"", []
        requester.fds += fds
        requester.buffer += message
        if not message or not requester.buffer.endswith(b"\n"):
            if not message:  # the starter left midway
                self.drop(requester, "the starter left before its request was whole")
            return None
        try:
            request = json.loads(requester.buffer)
            assert len(requester.fds) == _STREAMS, f"{len(requester.fds)} streams passed"
            pid = os.fork()
        except Exception as error:  # a broken request, or no fork: refused, the rest served
            self.answer(requester, f"error {getattr(error, 'errno', None) or errno.EINVAL}")
            self.drop(requester, repr(error))
            return None
        if pid == 0:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            self.selector.close()
            self.listener.close()
            os.close(self.wake_read)
            os.close(self.wake_write)
            for other in self.requesters:
                other.connection.close()
                for fd in other.fds if other is not requester else ():
                    os.close(fd)
            request["fds"] = requester.fds
            return dict(request)
        for fd in requester.fds:
            os.close(fd)
        requester.fds, requester.buffer, requester.pid = [], b"", pid
        self.children[pid] = requester
        if not self.answer(requester, f"pid {pid}"):
            self.drop(requester, "the starter left before it had the pid")
        self.reap()  # the child may have ended before it was registered
        return None

    def command(self, requester: _Requester) -> None:
        """A requester's ``signal N`` (answered ``signalled`` or ``error ERRNO``), or its end."""
        data = b""
        with contextlib.suppress(OSError):
            data = requester.connection.recv(4096)
        if not data:
            self.drop(requester)
            return
        requester.buffer += data
        *lines, requester.buffer = requester.buffer.split(b"\n")
        for line in lines:  # one command in flight: the requester awaits each answer
            answer = "signalled"
            if not requester.ended and self.children.get(requester.pid or 0) is requester:
                try:
                    os.kill(requester.pid or 0, int(line.split()[1]))
                except (OSError, ValueError, IndexError) as error:
                    answer = f"error {getattr(error, 'errno', None) or errno.EINVAL}"
            self.answer(requester, answer)

    def answer(self, requester: _Requester, line: str) -> bool:
        """Send ``line``; False if the requester is gone (it may have seen its child's end)."""
        try:
            requester.connection.sendall(f"{line}\n".encode())
        except OSError:
            return False
        return True

    def drop(self, requester: _Requester, why: str | None = None) -> None:
        """Forget a requester that has gone; its child, if alive, is reaped unreported."""
        if why:
            print(f"zygote: dropped a requester: {why}", file=sys.stderr, flush=True)
        if requester.pid is not None and self.children.get(requester.pid) is requester:
            self.children[requester.pid] = None
        for fd in requester.fds:
            os.close(fd)
        self.selector.unregister(requester.connection)
        self.requesters.discard(requester)
        requester.connection.close()

    def reap(self) -> None:
        """Tell each ended child's requester how it ended."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            requester = self.children.pop(pid, None)
            if requester is not None:
                requester.ended = True
                self.answer(requester, f"exit {os.waitstatus_to_exitcode(status)}")


def _import_preload() -> set[str]:
    """Import ``PRELOAD``; the environment variables the imports read through ``os.environ``
    (Celery reads a few ``CELERY_WORKER_*`` and ``C_*``, kombu ``KOMBU_*``, OpenTelemetry
    ``OTEL_PROPAGATORS``...), which a fork would then have from the zygote, not from its own
    environment. Reads in C (OpenSSL's) are not seen: ``forks.READ_AT_START`` names them."""
    read: set[str] = set()
    environ = type(os.environ)
    get, contains = environ.__getitem__, environ.__contains__

    def recorded_get(self: Any, name: str) -> str:
        read.add(name)
        return get(self, name)

    def recorded_contains(self: Any, name: object) -> bool:
        read.add(str(name))
        return contains(self, name)

    environ.__getitem__, environ.__contains__ = recorded_get, recorded_contains  # type: ignore[method-assign]
    try:
        for name in PRELOAD:
            __import__(name)
    finally:
        environ.__getitem__, environ.__contains__ = get, contains  # type: ignore[method-assign]
    return read


def _serve(path: str) -> dict[str, Any]:
    """Import what the children share, then serve at ``path``; says ``ready`` with the
    variables the imports read."""
    read = _import_preload()
    assert threading.active_count() == 1, "a preloaded module started a thread: no fork is safe"
    import gc

    gc.collect()
    gc.freeze()  # the imports' objects stay put: the children's pages stay shared
    server = _Server(path)
    print("ready", json.dumps(sorted(read)), flush=True)
    return server.serve()


def _become(request: dict[str, Any]) -> None:
    """In the forked child: take on the request's process state, then run its program as
    ``python ARGS`` would (an uncaught exception or ``SystemExit`` ends it the same way)."""
    if request["new_session"]:
        os.setsid()
    for target, fd in enumerate(request["fds"]):
        os.dup2(fd, target)
    for fd in request["fds"]:
        if fd > 2:
            os.close(fd)
    os.environ.clear()
    os.environ.update(request["env"])
    args: list[str] = request["args"]
    if args[0] == "-m":
        sys.argv = [args[1], *args[2:]]
        import runpy

        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = ["-c", *args[2:]]
        sys.path[0] = ""
        main = types.ModuleType("__main__")  # what the code defines is ``__main__``'s, as in -c
        sys.modules["__main__"] = main
        exec(compile(args[1], "<string>", "exec"), main.__dict__)


if __name__ == "__main__":
    _become(_serve(sys.argv[1]))
