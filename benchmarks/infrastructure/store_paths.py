"""The cost of the run store's path: W1 (1,000 zero-latency members and a reduce, ms per
member, as in ``benchmarks/throughput/scale.py``) with the run store on a plain standalone Redis and
on a 3-primary Redis Cluster, and reached through Sentinel, in the same run.

Each kind of store gets its own workers (2 x 8 threads) and its own standalone Redis for the
broker and the result backend, so that only the run store differs. Rounds alternate which kind
goes first, each after the machine is idle; the figure is the median ratio (Cluster / plain)
over the rounds, with the spread. A kind is a name in ``STORES``: another path (Sentinel) is
one more entry.

``python -m benchmarks.infrastructure.store_paths [--kinds plain,sentinel,cluster] [--rounds 5]
[--members 1000] [--print-only]`` prints a Markdown section and writes it to RESULTS.md (unless
``--print-only``).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path

from benchmarks.harness import Cluster, write_section
from benchmarks.throughput.scale import idle_gate, map_reduce, spread, table
from orchestrator import Client
from orchestrator.config.settings import Settings
from orchestrator.local import LocalRedis, LocalWorker, wait_for_workers

QUEUES = ("coordinator", "agents", "tools")  # no learner: W1 measures the run's own path
LAYOUT = (2, 8)  # workers x threads, as W1 in throughput/scale.py
CAP = 64


@contextmanager
def plain_store() -> Iterator[dict[str, str]]:
    """A standalone Redis as the run store: the environment naming it."""
    server = LocalRedis()
    try:
        yield {"ORCHESTRATOR_REDIS_URL": server.url}
    finally:
        server.stop()


@contextmanager
def cluster_store() -> Iterator[dict[str, str]]:
    """A 3-primary Redis Cluster as the run store (``tests/deploy/redis_cluster.py``)."""
    from tests.deploy.redis_cluster import LocalRedisCluster

    started = LocalRedisCluster(primaries=3)
    try:
        yield {"ORCHESTRATOR_REDIS_URL": started.url, "ORCHESTRATOR_REDIS_CLUSTER": "1"}
    finally:
        started.stop()


@contextmanager
def sentinel_store() -> Iterator[dict[str, str]]:
    """A primary, two replicas and three sentinels (``tests/deploy/sentinel_set.py``): the run store
    reached through Sentinel."""
    from tests.deploy.sentinel_set import SentinelSet

    started = SentinelSet()
    try:
        yield started.env()
    finally:
        started.stop()


STORES: dict[str, Callable[[], AbstractContextManager[dict[str, str]]]] = {
    "plain": plain_store,
    "sentinel": sentinel_store,
    "cluster": cluster_store,
}
"""Each kind of run store: a context that starts it and gives the environment naming it."""


class Deployment:
    """Workers and a client against one kind of run store, with a broker of their own."""

    def __init__(self, kind: str, stack: ExitStack) -> None:
        self.kind = kind
        store_env = stack.enter_context(STORES[kind]())
        broker = LocalRedis()
        stack.callback(broker.stop)
        self.env = {
            **store_env,
            "ORCHESTRATOR_BROKER_URL": broker.url,
            "ORCHESTRATOR_RESULT_BACKEND": broker.url.removesuffix("/0") + "/1",
        }
        logs = Path(tempfile.mkdtemp(prefix=f"ao-bench-{kind}-"))
        self.workers = [
            LocalWorker(
                f"{kind}{i}", self.env, queues=QUEUES, concurrency=LAYOUT[1],
                log_path=logs / f"w{i}.log",
            )
            for i in range(LAYOUT[0])
        ]  # fmt: skip
        for worker in self.workers:
            stack.callback(worker.stop)
        stack.callback(gc.collect)  # result objects go while their backend is still up
        settings = Settings.model_validate(
            {name.removeprefix("ORCHESTRATOR_").lower(): value for name, value in self.env.items()}
        )
        self.client = Client(settings=settings)
        wait_for_workers(self.client.redis, [w.hostname for w in self.workers], timeout_s=60)


def w1_ms_per_member(deployment: Deployment, members: int) -> float:
    """Wall from submission to result of one W1 run, per member (ms), as
    ``throughput/scale.py`` runs it."""
    cluster = Cluster(deployment.client, deployment.workers)
    return map_reduce(cluster, members, CAP, {})[0] / members * 1000


def measure(kinds: list[str], rounds: int, members: int) -> dict[str, list[float]]:
    """W1 ms per member of each kind, ``rounds`` times, the order turning each round."""
    figures: dict[str, list[float]] = {kind: [] for kind in kinds}
    with ExitStack() as stack:
        deployments = [Deployment(kind, stack) for kind in kinds]
        for deployment in deployments:  # warm-up: imports, script loading, connections
            w1_ms_per_member(deployment, members)
        for number in range(rounds):
            shift = number % len(deployments)
            for deployment in deployments[shift:] + deployments[:shift]:
                idle_gate()
                figures[deployment.kind].append(w1_ms_per_member(deployment, members))
    return figures


def report(figures: dict[str, list[float]], members: int) -> str:
    kinds = list(figures)
    base = kinds[0]
    rounds = len(figures[base])
    rows = []
    for number in range(rounds):
        row = [str(number + 1)] + [f"{figures[kind][number]:.3f}" for kind in kinds]
        row += [f"{figures[kind][number] / figures[base][number]:.2f}" for kind in kinds[1:]]
        rows.append(row)
    headers = ["round", *(f"{kind} (ms)" for kind in kinds)]
    headers += [f"{kind} / {base}" for kind in kinds[1:]]
    lines = [
        f"W1, {members} zero-latency members and a reduce, ms per member",
        "",
        f"{LAYOUT[0]} workers x {LAYOUT[1]} threads per kind of store, cap {CAP}; broker and "
        "result backend on a standalone Redis of their own for every kind.",
        "",
        table(headers, rows),
        "",
    ]
    for kind in kinds:
        lines.append(f"- {kind}: {spread(figures[kind])} ms per member (median, min - max)")
    for kind in kinds[1:]:
        ratios = [k / b for k, b in zip(figures[kind], figures[base], strict=True)]
        lines.append(
            f"- **{kind} / {base}: median ratio {statistics.median(ratios):.2f}** "
            f"(range {min(ratios):.2f} - {max(ratios):.2f})"
        )
    return "\n".join(lines) + "\n"


def encoding_us(rounds: int = 5, calls: int = 20_000) -> str:
    """Client-side cost of one script call's command (redis-py packing it, no I/O): with the
    run's hash key alone (as before the Cluster layout) and with all 15 keys of the run, the
    names cached (``keys.run_keys``). Medians of ``rounds`` rounds, microseconds per call."""
    from redis.connection import Connection

    from orchestrator.state.keys import new_run_id, run_keys

    pack = Connection().pack_command
    run_id = new_run_id()
    args = ["0", "node", "token", 30000, '{"name": "m_0", "outcome": "ok"}', "ok", "", ""]
    figures: dict[str, list[float]] = {"1 key": [], "15 keys": []}
    for _ in range(rounds):
        for label in figures:
            started = time.perf_counter()
            for _ in range(calls):
                keys = run_keys(run_id).all if label == "15 keys" else (run_keys(run_id).run,)
                pack("EVALSHA", "0" * 40, len(keys), *keys, *args)
            figures[label].append((time.perf_counter() - started) / calls * 1e6)
    one, all_keys = figures["1 key"], figures["15 keys"]
    ratio = statistics.median(all_keys) / statistics.median(one)
    return (
        f"- packing one script call: 1 key {spread(one, 2)} us, 15 keys {spread(all_keys, 2)} us "
        f"(median ratio {ratio:.2f})\n"
    )


def main(
    kinds: tuple[str, ...] = tuple(STORES), rounds: int = 5, members: int = 1000, write: bool = True
) -> dict[str, float]:
    """Measure, print and (unless ``write`` is False) write the section; returns each kind's
    median ratio to the first kind."""
    for name in ("ORCHESTRATOR_REDIS_CLUSTER", "ORCHESTRATOR_SENTINEL_MASTER"):
        os.environ.pop(name, None)
    figures = measure(list(kinds), rounds, members)
    body = report(figures, members) + encoding_us()
    print(body)
    if write:
        write_section("Run store paths: plain Redis, Sentinel and Cluster on W1", body)
    base = figures[kinds[0]]
    return {
        kind: statistics.median(k / b for k, b in zip(figures[kind], base, strict=True))
        for kind in kinds[1:]
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--kinds", default=",".join(STORES))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--encoding-only", action="store_true", help="only the packing cost")
    parser.add_argument("--print-only", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args()
    chosen = tuple(kind.strip() for kind in args.kinds.split(",") if kind.strip())
    unknown = sorted(set(chosen) - set(STORES))
    if unknown:
        parser.error(f"unknown kinds {unknown}; known: {sorted(STORES)}")
    if args.encoding_only:
        print(encoding_us())
    else:
        main(chosen, args.rounds, args.members, write=not args.print_only)
