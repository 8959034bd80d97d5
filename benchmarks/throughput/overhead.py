"""(a) Orchestration overhead: a map-reduce of 1,000 zero-latency scripted mappers against a bare
Celery chord of 1,000 no-op tasks, on the same workers, alternating, in one run.

Target: map-reduce wall / bare chord wall <= 1.3.
"""

from __future__ import annotations

import gc
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
    """Best-against-best ratio and the (bare, map-reduce) walls of each round."""
    # No learner queue: a map-reduce's records, shipped when it ends, would otherwise be
    # ingested during the next bare-chord round and slow the baseline down.
    with cluster(workers, CONCURRENCY, queues=("coordinator", "agents", "tools")) as c:
        map_reduce(c)  # warm-up: imports, script loading, connections
        bare_chord(c)
        pairs = [(bare_chord(c), map_reduce(c)) for _ in range(ROUNDS)]
    # The bare chord is bimodal on this machine (about 2.4 s, or 4 to 10 s in some rounds), so a
    # median of paired ratios depends on how many slow rounds it hits. Best against best
    # compares our runs with the baseline's fast mode, and shrugs off a noisy neighbour.
    return min(o for _, o in pairs) / min(b for b, _ in pairs), pairs


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

**Best map-reduce / best bare chord: {ratio:.2f}** (target <= 1.3): {verdict}.
"""
        )
        print(f"overhead ratio with {workers} workers {ratio:.2f} {pairs}", flush=True)
    write_section(
        "Overhead: map-reduce vs bare chord",
        f"""
{MEMBERS} members; map-reduce cap {CAP}, and it also runs its budget-gated reducer. Wall
seconds from submission to result, alternating rounds after a warm-up. The figure is the best
map-reduce round over the best bare-chord round: the bare chord is bimodal here (about 2.4 s, or
4 to 10 s in some rounds), and a median would depend on how many slow rounds it hit.

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
