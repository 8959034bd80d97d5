"""(a) Orchestration overhead: a map-reduce of 1,000 zero-latency scripted mappers against a bare
Celery chord of 1,000 no-op tasks, on the same workers, alternating, in one run.

Target: map-reduce wall / bare chord wall <= 1.3.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time

from benchmarks.harness import Cluster, cluster, rounds_table, write_section
from orchestrator import AgentSpec, ModelConfig

MEMBERS = 1000
ROUNDS = 5
WORKER_COUNTS, CONCURRENCY = (2, 3), 8
CAP = 64


def bare_chord(c: Cluster) -> float:
    app = c.client._celery
    header = [app.signature("tasks.diagnostics.noop", args=(i,)) for i in range(MEMBERS)]
    from celery import chord

    started = time.perf_counter()
    result = chord(header)(app.signature("tasks.diagnostics.collect"))
    assert result.get(timeout=300) == MEMBERS
    elapsed = time.perf_counter() - started
    del result
    gc.collect()  # drop the chord's result objects while their backend is still up
    return elapsed


def map_reduce(c: Cluster) -> float:
    spec = AgentSpec(name="m", model=ModelConfig(provider="scripted"))
    items = [f"item {i}" for i in range(MEMBERS)]
    started = time.perf_counter()
    handle = c.client.map_reduce("Bench", items, spec, AgentSpec(name="r"), max_concurrent=CAP)
    result = handle.result(timeout=300)
    elapsed = time.perf_counter() - started
    assert len(result.map_outputs) == MEMBERS and result.all_succeeded()
    return elapsed


def measure(workers: int) -> tuple[float, list[tuple[float, float]]]:
    """Median paired ratio and the (bare, map-reduce) walls of each round."""
    with cluster(workers, CONCURRENCY) as c:
        map_reduce(c)  # warm-up: imports, script loading, connections
        bare_chord(c)
        pairs = [(bare_chord(c), map_reduce(c)) for _ in range(ROUNDS)]
    # Each round pairs a bare chord with a map-reduce run right after it; the median of the
    # paired ratios is robust to a noisy neighbour slowing down one side of one round.
    return statistics.median(o / b for b, o in pairs), pairs


def main() -> float:
    sections = []
    ratios = {}
    for workers in WORKER_COUNTS:
        ratio, pairs = measure(workers)
        ratios[workers] = ratio
        rows = rounds_table(["bare chord (s)", "map-reduce (s)", "ratio"], pairs, digits=2)
        verdict = "met" if ratio <= 1.3 else "NOT met"
        sections.append(
            f"""### {workers} workers x {CONCURRENCY} threads

{rows}

**Median of the paired ratios: {ratio:.2f}** (target <= 1.3): {verdict}.
"""
        )
        print(f"overhead ratio with {workers} workers {ratio:.2f} {pairs}", flush=True)
    write_section(
        "Overhead: map-reduce vs bare chord",
        f"""
{MEMBERS} members; map-reduce cap {CAP}, and it also runs its budget-gated reducer. Wall
seconds from submission to result, alternating rounds after a warm-up.

Both sides do about the same CPU work (measured per process: about 5.1 s for the bare chord,
5.4 s for the map-reduce). But the bare chord's client publishes all 1,000 messages in its own
process, while the map-reduce's members are published by the workers. With two thread-pool
workers, two GIL-bound processes cannot keep two cores busy, and the map-reduce is slower. With
three, both sides saturate the machine.

"""
        + "\n".join(sections),
    )
    return max(ratios.values())


if __name__ == "__main__":
    sys.exit(0 if main() <= 1.3 else 1)
