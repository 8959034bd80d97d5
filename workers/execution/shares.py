"""This process's share of each run's members, so that lanes spread a run over the worker
processes instead of staying where the broker put its first window.

A run's first window travels a message per member, and the process that takes most of those
messages (the one not busy publishing them, or the first to ask the broker) would keep them
all: a lane goes on in its thread with the member its end let in. Each process then runs Python
for its lanes on one core while another may idle. So a lane goes on only while its process runs
no more than its share of the run, the run's cap over the live worker processes; past it, the
member its end let in is published, for whichever process has room to take it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from orchestrator.state.presence import live_workers

PROCESSES_READ_S = 1.0
"""How long this process goes on with the number of live worker processes it read."""


def fair_share(cap: int, processes: int) -> int:
    """A process's share of a run's ``cap`` members over ``processes`` (rounded up)."""
    return -(-cap // max(processes, 1))


class RunShares:
    """How many members of each run this process runs now, and the live worker processes."""

    def __init__(self) -> None:
        self._running: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._processes = 1
        self._read_at = float("-inf")

    @contextmanager
    def running(self, run_id: str) -> Iterator[None]:
        """Count a member of ``run_id`` as running in this process while in the block."""
        with self._lock:
            self._running[run_id] += 1
        try:
            yield
        finally:
            with self._lock:
                self._running[run_id] -= 1
                if self._running[run_id] <= 0:
                    del self._running[run_id]

    def over(self, run_id: str, cap: int, client: redis.Redis) -> bool:
        """Whether this process runs more members of ``run_id`` than its share of ``cap``."""
        with self._lock:
            running = self._running[run_id]
        return running > fair_share(cap, self._live_processes(client))

    def _live_processes(self, client: redis.Redis) -> int:
        now = time.monotonic()
        if now - self._read_at > PROCESSES_READ_S:
            # Should Redis not answer, the count read before serves until it does.
            with contextlib.suppress(redis.RedisError):
                self._processes = max(len(live_workers(client)), 1)
            self._read_at = now
        return self._processes


run_shares = RunShares()
