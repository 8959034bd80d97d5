"""The systems the scale benchmark compares, each started fresh on a private Redis.

- ``ours_default``: what ``orchestrator worker`` starts with its defaults (a process per core,
  500 threads each, every queue, the learner's included), supervisor and all;
- ``ours_layout``: the benchmark's own layout, ``celery worker`` processes of this project's
  app with a given thread count, without the learner queue;
- ``bare``: Celery alone (``benchmarks/throughput/bare_app.py``: its defaults plus JSON) on as many
  processes and threads.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis
from celery import Celery

from benchmarks.throughput.bare_app import make_app
from orchestrator import Client
from orchestrator.cli.launcher import DEFAULT_THREADS, default_processes
from orchestrator.local import LocalRedis, LocalWorker, stop_processes, wait_for_workers

BENCH_QUEUES = ("coordinator", "agents", "tools")


@dataclass
class System:
    """A started system: the Redis it uses, its processes, and what submits to it."""

    url: str
    pids: list[int]
    client: Client | None = None
    bare: Celery | None = None
    cpu_at_start: dict[int, float] = field(default_factory=dict)

    def rss_mb(self) -> float:
        """Resident memory of every process of the system (supervisor included), MB."""
        return sum(psutil.Process(pid).memory_info().rss for pid in self.pids) / 2**20

    def cpu_s(self) -> list[float]:
        """CPU seconds (user + system) each process used since ``mark``."""
        return [_cpu(pid) - self.cpu_at_start.get(pid, 0.0) for pid in self.pids]

    def mark(self) -> None:
        self.cpu_at_start = {pid: _cpu(pid) for pid in self.pids}


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _logs() -> Path:
    return Path(tempfile.mkdtemp(prefix="ao-scale-"))


@contextmanager
def ours_default() -> Iterator[System]:
    """``orchestrator worker`` with no options against a private Redis."""
    server = LocalRedis()
    env = {**os.environ, "ORCHESTRATOR_REDIS_URL": server.url}
    log = open(_logs() / "workers.log", "ab")  # noqa: SIM115
    command = [sys.executable, "-m", "orchestrator.cli", "worker"]
    supervisor = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    host = socket.gethostname()
    names = [f"w{n}@{host}" for n in range(1, default_processes() + 1)]
    try:
        wait_for_workers(redis.Redis.from_url(server.url), names, timeout_s=60)
        children = [child.pid for child in psutil.Process(supervisor.pid).children()]
        yield System(server.url, [supervisor.pid, *children], client=Client(redis_url=server.url))
    finally:
        stop_processes([supervisor])
        log.close()
        server.stop()


@contextmanager
def ours_layout(processes: int, threads: int) -> Iterator[System]:
    """This project's workers, ``processes`` x ``threads``, without the learner queue."""
    server = LocalRedis()
    logs, env = _logs(), {"ORCHESTRATOR_REDIS_URL": server.url}
    workers = [
        LocalWorker(f"bench{i}", env, BENCH_QUEUES, concurrency=threads, log_path=logs / f"{i}")
        for i in range(processes)
    ]
    try:
        wait_for_workers(redis.Redis.from_url(server.url), [w.hostname for w in workers])
        pids = [w.pid for w in workers]
        yield System(server.url, pids, client=Client(redis_url=server.url))
    finally:
        for worker in workers:
            worker.stop()
        server.stop()


@contextmanager
def bare(processes: int, threads: int = DEFAULT_THREADS) -> Iterator[System]:
    """Celery alone: ``processes`` workers of ``threads`` threads, Celery's defaults."""
    server = LocalRedis()
    logs, host = _logs(), socket.gethostname()
    env = {**os.environ, "BARE_REDIS_URL": server.url}
    names = [f"bare{i}@{host}" for i in range(processes)]
    command = [sys.executable, "-m", "celery", "-A", "benchmarks.throughput.bare_app", "worker"]
    started = [
        subprocess.Popen(
            [*command, "-P", "threads", "-c", str(threads), "-n", name, "-l", "INFO"],
            env=env,
            stdout=open(logs / name, "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        for name in names
    ]
    app = make_app(server.url)
    try:
        deadline = time.monotonic() + 60
        while {n for reply in app.control.ping(timeout=0.5) for n in reply} != set(names):
            assert time.monotonic() < deadline, "the bare workers did not start"
        yield System(server.url, [p.pid for p in started], bare=app)
    finally:
        app.close()
        stop_processes(started)
        server.stop()
