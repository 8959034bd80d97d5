"""(b) Parallel efficiency of a capped map-reduce: 64 mappers of 200 +- 50 ms, cap 8, 3 workers.

The ideal critical path is the makespan of the mappers' own durations scheduled in item order
on 8 slots (each item starts the moment a slot frees), plus the reducer's duration: what a
scheduler with zero overhead would take for the same work. Efficiency = ideal / measured wall,
from submission to the result in the client's hands.

Target: efficiency >= 0.9.
"""

from __future__ import annotations

import heapq
import statistics
import sys
import time

from benchmarks.harness import cluster, rounds_table, write_section
from orchestrator import AgentSpec, ModelConfig

MAPPERS, CAP, WORKERS, CONCURRENCY = 64, 8, 3, 8
LATENCY_MS, JITTER_MS = 200, 50
ROUNDS = 3


def makespan(durations_s: list[float], slots: int) -> float:
    """Greedy list scheduling in order: each job starts on the earliest free slot."""
    free_at = [0.0] * slots
    for duration in durations_s:
        start = heapq.heappop(free_at)
        heapq.heappush(free_at, start + duration)
    return max(free_at)


def one_round(client, seed: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    options = {"latency_ms": LATENCY_MS, "jitter_ms": JITTER_MS, "seed": seed}
    mapper = AgentSpec(name="m", model=ModelConfig(provider="scripted", options=options))
    reducer = AgentSpec(name="r", model=ModelConfig(provider="scripted", options=options))
    items = [f"document {i}" for i in range(MAPPERS)]
    started = time.perf_counter()
    result = client.map_reduce("Summarise", items, mapper, reducer, max_concurrent=CAP).result(60)
    wall = time.perf_counter() - started
    assert result.all_succeeded() and result.reducer_output is not None
    durations = [o.duration_ms / 1000 for o in result.map_outputs]
    ideal = makespan(durations, CAP) + result.reducer_output.duration_ms / 1000
    return ideal, wall


def main() -> float:
    rounds = []
    with cluster(WORKERS, CONCURRENCY) as c:
        one_round(c.client, seed=0)  # warm-up
        rounds = [one_round(c.client, seed=seed) for seed in range(1, ROUNDS + 1)]
    efficiencies = [ideal / wall for ideal, wall in rounds]
    efficiency = statistics.median(efficiencies)
    verdict = "met" if efficiency >= 0.9 else "NOT met"
    # The table's ratio column is wall / ideal; efficiency is its inverse.
    rows = rounds_table(["ideal (s)", "wall (s)", "wall / ideal"], rounds)
    write_section(
        "Parallel efficiency: 64 mappers, cap 8, 3 workers",
        f"""
{MAPPERS} scripted mappers of {LATENCY_MS} +- {JITTER_MS} ms and a reducer of the same latency,
cap {CAP}, {WORKERS} workers x {CONCURRENCY} threads. Ideal = makespan of the mappers' durations in
item order on {CAP} slots + the reducer's duration; wall = submit to result.

{rows}

**Median efficiency: {efficiency:.3f}** (target >= 0.9): {verdict}.
""",
    )
    print(f"efficiency {efficiency:.3f} {rounds}")
    return efficiency


if __name__ == "__main__":
    sys.exit(0 if main() >= 0.9 else 1)
