"""(a) Orchestration overhead: a map-reduce of 1,000 zero-latency scripted mappers against a bare
Celery chord of 1,000 no-op tasks, on the same workers, alternating, in one run.

Target: map-reduce wall / bare chord wall <= 1.3.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time

from benchmarks.harness import Cluster, cluster, write_section
from orchestrator import AgentSpec, ModelConfig

MEMBERS = 1000
ROUNDS = 5
WORKERS, CONCURRENCY = 2, 8
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


def main() -> float:
    bare: list[float] = []
    ours: list[float] = []
    with cluster(WORKERS, CONCURRENCY) as c:
        map_reduce(c)  # warm-up: imports, script loading, connections
        bare_chord(c)
        for _ in range(ROUNDS):
            bare.append(bare_chord(c))
            ours.append(map_reduce(c))
    # Each round pairs a bare chord with a map-reduce run right after it; the median of the
    # paired ratios is robust to a noisy neighbour slowing down one side of one round.
    ratio = statistics.median(o / b for b, o in zip(bare, ours, strict=True))
    verdict = "met" if ratio <= 1.3 else "NOT met"
    rows = "\n".join(
        f"| {i + 1} | {b:.2f} | {o:.2f} | {o / b:.2f} |"
        for i, (b, o) in enumerate(zip(bare, ours, strict=True))
    )
    write_section(
        "Overhead: map-reduce vs bare chord",
        f"""
{MEMBERS} members, {WORKERS} workers x {CONCURRENCY} threads, map-reduce cap {CAP}; the
map-reduce also runs its budget-gated reducer. Wall seconds, alternating rounds after a warm-up.

| round | bare chord (s) | map-reduce (s) | ratio |
| --- | --- | --- | --- |
{rows}

**Median of the paired ratios: {ratio:.2f}** (target <= 1.3): {verdict}.
""",
    )
    print(f"overhead ratio {ratio:.2f} (bare {bare}, map-reduce {ours})")
    return ratio


if __name__ == "__main__":
    sys.exit(0 if main() <= 1.3 else 1)
