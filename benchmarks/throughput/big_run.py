"""(S2) A big run: 20,000 zero-latency scripted items, cap 200, on 3 workers x 16 threads: wall
time, ms per item, and the Redis memory the run leaves behind per item once it ended.

Every worker serves every queue, the ``learner`` queue included, so the records the mappers ship
are consumed as in production; memory is measured once the learners have ingested all of them
and no message waits or is unacknowledged. Two measures: Redis's ``used_memory`` after the run
against before it (after a warm-up run, so that connections and scripts are already there), and
``MEMORY USAGE`` of the keys left, by family.

Target: at most 1 KB per item left in Redis once the run ended.

``python -m benchmarks.throughput.big_run`` runs S2 and writes its section of RESULTS.md;
``--items 2000`` is a quick check that prints and writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import redis

from benchmarks.harness import cluster, write_section
from benchmarks.throughput.footprint import Footprint, run_footprint
from orchestrator import AgentSpec, ModelConfig
from orchestrator.plans.keys import plan_seen_key

ITEMS = 20_000
CAP = 200
WORKERS, THREADS = 3, 16
TARGET = 1024
"""Bytes per item the run may leave in Redis once it ended."""
WARM_UP_ITEMS = 200
MAPPER, REDUCER = "s2-mapper", "s2-reducer"


@dataclass
class BigRun:
    items: int
    wall_s: float
    result_s: float
    used_memory_delta: int
    footprint: Footprint

    @property
    def ms_per_item(self) -> float:
        return self.wall_s * 1000 / self.items

    @property
    def bytes_per_item(self) -> float:
        return self.used_memory_delta / self.items


def _settled(state: redis.Redis, learned: dict[str, int], timeout_s: float = 600) -> None:
    """Until the learners ingested ``learned`` records per agent and every message was taken
    and acknowledged (a task stores what it stores before its message is acknowledged)."""
    deadline = time.monotonic() + timeout_s

    def done() -> bool:
        seen = all(int(state.get(plan_seen_key(a)) or 0) >= n for a, n in learned.items())
        return seen and state.llen("learner") == 0 and state.hlen("unacked") == 0

    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("the learners did not drain their queue")
        time.sleep(0.2)


def measure(items: int) -> BigRun:
    mapper = AgentSpec(name=MAPPER, model=ModelConfig(provider="scripted"))
    reducer = AgentSpec(name=REDUCER, model=ModelConfig(provider="scripted"))
    with cluster(WORKERS, THREADS) as c:
        state = c.client.redis
        warm = c.client.map_reduce(
            "Warm up", [f"w{i}" for i in range(WARM_UP_ITEMS)], mapper, reducer, CAP
        )
        warm.result(timeout=300)
        _settled(state, {MAPPER: WARM_UP_ITEMS, REDUCER: 1})
        before = int(state.info("memory")["used_memory"])

        started = time.perf_counter()
        handle = c.client.map_reduce(
            "Summarise", [f"item {i}" for i in range(items)], mapper, reducer, CAP
        )
        result = handle.result(timeout=1800)
        wall = time.perf_counter() - started
        assert len(result.map_outputs) == items and result.all_succeeded()
        del result

        _settled(state, {MAPPER: WARM_UP_ITEMS + items, REDUCER: 2})
        after = int(state.info("memory")["used_memory"])
        footprint = run_footprint(state, handle.id, all_task_results=True)
        read_started = time.perf_counter()
        again = handle.result(timeout=60)  # the ended run's result, read in pages
        result_s = time.perf_counter() - read_started
        assert len(again.map_outputs) == items
    return BigRun(items, wall, result_s, after - before, footprint)


def report(run: BigRun) -> str:
    verdict = "met" if run.bytes_per_item <= TARGET else "NOT met"
    keys = run.footprint.table(run.items)
    return f"""
{run.items:,} zero-latency scripted mappers and a scripted reducer, cap {CAP}, {WORKERS} workers x
{THREADS} threads, each serving every queue (the learners included: the records the mappers
ship are ingested as the run goes). Memory is measured once the learners have ingested every
record and no message waits or is unacknowledged, after a {WARM_UP_ITEMS}-item warm-up run.

| measure | value |
| --- | ---: |
| wall, submit to result | {run.wall_s:.1f} s |
| per item | {run.ms_per_item:.2f} ms |
| `result()` of the ended run, read again in pages | {run.result_s:.2f} s |
| Redis `used_memory` after the run, minus before | {run.used_memory_delta:,} bytes |
| **per item** | **{run.bytes_per_item:,.0f} bytes** |

**Memory left per item: {run.bytes_per_item:,.0f} bytes** (target <= {TARGET}): {verdict}.

The keys the run left, by `MEMORY USAGE` (every task result and the learner queue included):

{keys}

The event stream is bounded per run (`ORCHESTRATOR_EVENTS_MAXLEN`, about 10,000 events), not
per item; everything left expires after `ORCHESTRATOR_RESULT_TTL_S` (7 days by default).
"""


def main(items: int = ITEMS, write: bool = True) -> float:
    run = measure(items)
    text = report(run)
    print(text, flush=True)
    if write:
        write_section("Big run (S2): Redis memory left per item", text)
    return run.bytes_per_item


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=ITEMS, help="a quick check: writes nothing")
    args = parser.parse_args()
    left = main(args.items, write=args.items == ITEMS)
    sys.exit(0 if left <= TARGET else 1)
