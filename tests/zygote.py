"""Python processes forked from a parent that has imported the project already.

The suite starts about 200 ``celery worker`` processes and 80 runs of the ``orchestrator`` CLI.
Each, started afresh, spends most of its start importing Celery, kombu, redis-py, pydantic,
jsonschema, OpenTelemetry and the project: on 2 cores that was a third of the suite's CPU. A
zygote (one per test process, started at its first use) imports them once; each process the
tests start is a fork of it that sets its environment, working directory, standard streams and
``sys.argv`` as ``exec`` would, then runs ``python -m MODULE`` or ``python -c CODE`` as the
interpreter does. What runs is the real thing (Celery's own worker main, the CLI's ``main``); only
the imports are shared. The zygote imports nothing that reads the environment: a worker reads its
settings after the fork, as at a fresh start.

``tests/forks.py`` starts processes from it, and falls back to ``subprocess`` for whatever a fork
cannot stand in for: another program, a command under a prefix (``ip netns exec``), a different
working directory, or an environment that changes how the interpreter itself starts
(``PYTHON*``, ``LD_*``: libfaketime's ``LD_PRELOAD``). ``ORCHESTRATOR_TEST_ZYGOTE=0`` switches
it off.

Protocol (a Unix socket): a request is one JSON line with the file descriptors of the child's
standard streams passed beside it (``SCM_RIGHTS``); the zygote answers ``pid N`` at the fork and
``exit S`` (Popen's ``returncode``) when the child has ended, on the same connection.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import sys
import threading
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


def _serve(path: str) -> dict[str, Any]:
    """The zygote's loop; returns (in a forked child only) the request that child is to run."""
    for name in PRELOAD:
        __import__(name)
    assert threading.active_count() == 1, "a preloaded module started a thread: no fork is safe"
    import gc

    gc.collect()
    gc.freeze()  # the imports' objects stay put: the children's pages stay shared
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_read, selectors.EVENT_READ, "child")
    selector.register(sys.stdin, selectors.EVENT_READ, "parent")  # EOF: the tests are gone
    print("ready", flush=True)
    children: dict[int, socket.socket] = {}
    while True:
        for key, _ in selector.select():
            if key.data == "parent":
                if not os.read(sys.stdin.fileno(), 4096):
                    os._exit(0)
            elif key.data == "child":
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_read, 4096)
                _reap(children)
            else:
                connection, _ = listener.accept()
                message, fds, _, _ = socket.recv_fds(connection, 65536, _STREAMS)
                while not message.endswith(b"\n"):  # a long environment comes in parts
                    message += connection.recv(65536)
                request = json.loads(message)
                pid = os.fork()
                if pid == 0:
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    selector.close()
                    listener.close()
                    os.close(wake_read)
                    os.close(wake_write)
                    for other in children.values():
                        other.close()
                    connection.close()
                    request["fds"] = fds
                    return dict(request)
                for fd in fds:
                    os.close(fd)
                connection.sendall(f"pid {pid}\n".encode())
                children[pid] = connection
                _reap(children)  # a child may have ended before it was registered


def _reap(children: dict[int, socket.socket]) -> None:
    """Tell each ended child's requester how it ended."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        connection = children.pop(pid, None)
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
            connection.close()


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
        exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__"})


if __name__ == "__main__":
    _become(_serve(sys.argv[1]))
