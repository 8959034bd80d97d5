"""Redis failover with Sentinel: the recovery window, and what Sentinel costs on W1.

(a) Recovery: a Sentinel set (one primary, two replicas, three sentinels; down-after 1 s,
quorum 2) and two workers with the default timings (lease 30 s, heartbeat 2 s, sweep 5 s). A
map-reduce of 8 members of 1.5 s runs all of them at once; when all 8 have started, the primary
is SIGKILLed. Measured from the kill: *failover*, until every sentinel names a new master and it
answers as one; *finished*, until the waiting client has the run's result. Each round then
restarts the killed server as a replica. The same run without a kill, measured from the same
point (all 8 started) to its result, is the *baseline*: what the run had left to do anyway.
*Finished* minus *baseline* is what the failover cost the run.

(b) W1 (``benchmarks/throughput/scale.py``): 1,000 zero-latency members and a reduce, cap 64, ms per
member, through Sentinel and through a plain Redis, two deployments of 2 workers x 8 threads up
at once, rounds alternating which goes first.

``python -m benchmarks.infrastructure.failover [--quick] [--recovery-only] [--print-only]``:
``--quick`` runs fewer rounds and smaller sizes; the section is written to RESULTS.md unless
``--print-only``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.harness import Cluster, cluster, write_section
from benchmarks.throughput.scale import idle_gate, map_reduce, spread, table
from orchestrator import AgentSpec, Client, ModelConfig
from orchestrator.config.settings import Settings
from orchestrator.local import LocalWorker, wait_for_workers
from orchestrator.state.connection import store_client
from orchestrator.state.events import AgentStart
from tests.deploy.sentinel_set import SentinelSet
from tests.helpers import environment

QUEUES = ("coordinator", "agents", "tools")
MEMBERS, LATENCY_MS = 8, 1500


@contextmanager
def sentinel_cluster(worker_count: int, concurrency: int) -> Iterator[tuple[Cluster, SentinelSet]]:
    """Workers and a client on a fresh Sentinel set."""
    sentinels = SentinelSet()
    logs = Path(tempfile.mkdtemp(prefix="ao-bench-sentinel-"))
    with environment(sentinels.env()):
        workers = [
            LocalWorker(f"sbench{i}", sentinels.env(), QUEUES, concurrency=concurrency,
                        log_path=logs / f"w{i}.log")
            for i in range(worker_count)
        ]  # fmt: skip
        try:
            settings = Settings()
            wait_for_workers(store_client(settings), [w.hostname for w in workers], 60)
            yield Cluster(Client(settings=settings), workers), sentinels
        finally:
            gc.collect()
            for worker in workers:
                worker.stop()
            sentinels.stop()


def _all_started(handle: object) -> bool:
    events = handle.events(follow=False)  # type: ignore[attr-defined]
    return sum(isinstance(e, AgentStart) for e in events) >= MEMBERS


def one_run(c: Cluster, sentinels: SentinelSet | None) -> tuple[float, float]:
    """(failover s, finished s) from the moment all members run: the primary is killed then
    when ``sentinels`` is given, else nothing happens (failover 0)."""
    model = ModelConfig(provider="scripted", options={"latency_ms": LATENCY_MS})
    mapper, reducer = AgentSpec(name="m", model=model), AgentSpec(name="r")
    items = [f"item {i}" for i in range(MEMBERS)]
    handle = c.client.map_reduce("Failover", items, mapper, reducer, max_concurrent=MEMBERS)
    deadline = time.monotonic() + 60
    while not _all_started(handle):
        if time.monotonic() > deadline:
            raise RuntimeError("the members never all started")
        time.sleep(0.01)
    started = time.perf_counter()
    failover = 0.0
    if sentinels is not None:
        old = sentinels.kill_master()
        sentinels.wait_for_new_master(old)
        failover = time.perf_counter() - started
    result = handle.result(timeout=300)
    finished = time.perf_counter() - started
    assert result.all_succeeded() and len(result.map_outputs) == MEMBERS, "a member failed"
    if sentinels is not None:
        sentinels.rejoin(old)
    return failover, finished


def recovery(rounds: int) -> str:
    baselines: list[float] = []
    failovers: list[tuple[float, float]] = []
    with sentinel_cluster(2, 8) as (c, sentinels):
        one_run(c, None)  # warm-up
        for _ in range(rounds):
            idle_gate()
            baselines.append(one_run(c, None)[1])
            idle_gate()
            failovers.append(one_run(c, sentinels))
    base = statistics.median(baselines)
    rows = [
        [str(n), f"{f:.2f}", f"{d:.2f}", f"{b:.2f}", f"{d - b:.2f}"]
        for n, ((f, d), b) in enumerate(zip(failovers, baselines, strict=True), 1)
    ]
    costs = [d - b for (_, d), b in zip(failovers, baselines, strict=True)]
    return f"""### Recovery from a killed primary ({MEMBERS} members of {LATENCY_MS / 1000:g} s)

{table(["round", "failover (s)", "finished (s)", "baseline (s)", "cost (s)"], rows)}

Failover (kill -> the sentinels name the new master) {spread([f for f, _ in failovers], 2)} s;
finished (kill -> the waiting client has the result) {spread([d for _, d in failovers], 2)} s;
baseline (the same point -> result, no kill) {spread(baselines, 2)} s (median {base:.2f}).
**What the failover cost the run: median {statistics.median(costs):.2f} s** (range
{min(costs):.2f} - {max(costs):.2f}).
"""


def w1(rounds: int, members: int) -> str:
    plain: list[float] = []
    through: list[float] = []
    with cluster(2, 8, queues=QUEUES) as direct, sentinel_cluster(2, 8) as (sentinel, _):
        for c in (direct, sentinel):  # warm-up: imports, script loading, connections
            map_reduce(c, members, 64, {})
        for number in range(rounds):
            order = [(direct, plain), (sentinel, through)]
            if number % 2:
                order.reverse()
            for c, into in order:
                idle_gate()
                into.append(map_reduce(c, members, 64, {})[0] / members * 1000)
    ratios = [s / p for p, s in zip(plain, through, strict=True)]
    rows = [
        [str(n), f"{p:.3f}", f"{s:.3f}", f"{s / p:.2f}"]
        for n, (p, s) in enumerate(zip(plain, through, strict=True), 1)
    ]
    return f"""### W1 through Sentinel: {members} zero-latency members and a reduce, ms per member

{table(["round", "plain Redis (ms)", "through Sentinel (ms)", "ratio"], rows)}

Plain Redis {spread(plain)} ms per member; through Sentinel {spread(through)}.
**Median ratio {statistics.median(ratios):.2f}** (range {min(ratios):.2f} - {max(ratios):.2f}).
"""


def main(quick: bool = False, with_w1: bool = True, write: bool = True) -> None:
    """Measure, print and (unless ``write`` is False) write the section."""
    started = time.monotonic()
    rounds = 2 if quick else 5
    sections = [recovery(rounds)]
    if with_w1:
        sections.append(w1(rounds, 300 if quick else 1000))
    body = "\n".join(sections)
    print(body)
    print(f"(benchmark ran {time.monotonic() - started:.0f} s)", file=sys.stderr)
    if write:
        write_section("Redis failover with Sentinel", body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--recovery-only", action="store_true", help="skip W1")
    parser.add_argument("--print-only", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args()
    main(args.quick, not args.recovery_only, write=not args.print_only)
