"""Parallel branches: 8 branches of 500 ms scripted latency on 3 workers against one branch plus
its evaluation, alternating on the same workers in one run.

Target: wall(8 branches) / wall(1 branch + evaluation) <= 1.15.
"""

from __future__ import annotations

import statistics
import sys
import time

from benchmarks.harness import cluster, rounds_table, write_section
from orchestrator import AgentSpec, Client, ModelConfig

BRANCHES, LATENCY_MS = 8, 500
WORKERS, CONCURRENCY = 3, 8
ROUNDS = 5


def branches_wall(client: Client, count: int) -> float:
    configs = [
        AgentSpec(
            name=f"b{i}",
            config_id=f"c{i}",
            model=ModelConfig(provider="scripted", options={"latency_ms": LATENCY_MS}),
        )
        for i in range(count)
    ]
    started = time.perf_counter()
    result = client.parallel_branches(configs, prompt="Answer the question.").result(60)
    wall = time.perf_counter() - started
    assert result.selected_index == 0 and all(o.output.succeeded() for o in result.outcomes)
    return wall


def main() -> float:
    with cluster(WORKERS, CONCURRENCY) as c:
        branches_wall(c.client, BRANCHES)  # warm-up
        pairs = [
            (branches_wall(c.client, 1), branches_wall(c.client, BRANCHES)) for _ in range(ROUNDS)
        ]
    ratio = statistics.median(many / one for one, many in pairs)
    verdict = "met" if ratio <= 1.15 else "NOT met"
    rows = rounds_table(["1 branch (s)", f"{BRANCHES} branches (s)", "ratio"], pairs)
    write_section(
        "Parallel branches: 8 x 500 ms on 3 workers",
        f"""
{BRANCHES} scripted branches of {LATENCY_MS} ms (pick_first) against one branch plus its
evaluation, {WORKERS} workers x {CONCURRENCY} threads, alternating rounds after a warm-up.
Wall = submit to result.

{rows}

**Median of the paired ratios: {ratio:.3f}** (target <= 1.15): {verdict}.
""",
    )
    print(f"branches ratio {ratio:.3f} {pairs}")
    return ratio


if __name__ == "__main__":
    sys.exit(0 if main() <= 1.15 else 1)
