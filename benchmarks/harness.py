"""A private Redis and local workers for one benchmark, and a RESULTS.md writer."""

from __future__ import annotations

import gc
import os
import platform
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis

from orchestrator import Client
from orchestrator.config.celery_config import QUEUES
from orchestrator.local import LocalRedis, LocalWorker, wait_for_workers

RESULTS = Path(__file__).with_name("RESULTS.md")


@dataclass
class Cluster:
    client: Client
    workers: list[LocalWorker]


@contextmanager
def cluster(
    worker_count: int,
    concurrency: int,
    queues: Sequence[str] = QUEUES,
    worker_env: dict[str, str] | None = None,
) -> Iterator[Cluster]:
    """``worker_count`` workers on ``queues`` (default: every queue) against a private Redis,
    with ``worker_env`` added to their environment."""
    server = LocalRedis()
    env = {"ORCHESTRATOR_REDIS_URL": server.url}
    os.environ.update(env)
    logs = Path(tempfile.mkdtemp(prefix="ao-bench-"))
    workers = [
        LocalWorker(
            f"bench{i}",
            {**env, **(worker_env or {})},
            queues=queues,
            concurrency=concurrency,
            log_path=logs / f"w{i}.log",
        )
        for i in range(worker_count)
    ]
    try:
        wait_for_workers(redis.Redis.from_url(server.url), [w.hostname for w in workers])
        yield Cluster(Client(redis_url=server.url), workers)
    finally:
        # Celery result objects unsubscribe when collected: let them go while Redis is up.
        gc.collect()
        for worker in workers:
            worker.stop()
        server.stop()


def rounds_table(headers: list[str], rounds: list[tuple[float, float]], digits: int = 3) -> str:
    """A Markdown table of rounds: round number, the two measures and their ratio."""
    lines = [
        "| " + " | ".join(["round", *headers]) + " |",
        "| " + " | ".join(["---"] * (len(headers) + 1)) + " |",
    ]
    for number, (first, second) in enumerate(rounds, 1):
        cells = [f"{value:.{digits}f}" for value in (first, second, second / first)]
        lines.append("| " + " | ".join([str(number), *cells]) + " |")
    return "\n".join(lines)


def write_section(title: str, body: str) -> None:
    """Replace (or add) the ``## title`` section of RESULTS.md."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    section = f"## {title}\n\n_Measured {stamp} on {machine}._\n\n{body.strip()}\n"
    parts = text.split("\n## ")
    kept = [parts[0].rstrip() + "\n"] + [
        "## " + part.rstrip() + "\n" for part in parts[1:] if not part.startswith(title + "\n")
    ]
    RESULTS.write_text("\n".join([*kept, section]))


def drop_section(title: str) -> None:
    """Remove the ``## title`` section of RESULTS.md (one a newer section replaces)."""
    if not RESULTS.exists():
        return
    parts = RESULTS.read_text().split("\n## ")
    kept = [parts[0].rstrip() + "\n"] + [
        "## " + part.rstrip() + "\n" for part in parts[1:] if not part.startswith(title + "\n")
    ]
    RESULTS.write_text("\n".join(kept))
