"""Run every benchmark and write benchmarks/RESULTS.md, then draw its charts into
docs/benchmarks/ (``benchmarks/charts.py``); exits non-zero if a target is missed."""

from __future__ import annotations

import sys

from benchmarks import charts
from benchmarks.agent_calls import cache_governor, learning, tools
from benchmarks.infrastructure import (
    failover,
    host_cut,
    rabbit_recovery,
    redis_pressure,
    store_paths,
)
from benchmarks.limits import budget, cancel, tpm
from benchmarks.throughput import (
    big_run,
    branches,
    efficiency,
    fairness,
    overhead,
    scale,
    tree_reduce,
    watchdog,
)


def main() -> int:
    ratio = overhead.main()
    parallel = efficiency.main()
    branch_ratio = branches.main()
    fanout = tools.main()
    learned = learning.main()
    sweep_ratio = watchdog.main()
    cancel_s = cancel.main()
    budget_share = budget.main()  # 0 when any round passed max_tokens
    caching = cache_governor.main()
    tree_fits = tree_reduce.main()
    left_per_item = big_run.main()
    scaled = scale.main()
    fair_ratio = fairness.main()
    tokens_held = tpm.main()  # no 429 and >= 0.9 of the limit with a tpm pool
    # Beyond one host and one Redis: measured and written, with no target to meet.
    host_cut.main()
    failover.main()
    rabbit_recovery.main()
    redis_pressure.main()
    store_paths.main()
    charts.main()  # from the RESULTS.md this run wrote
    met = ratio <= 1.3 and parallel >= 0.9 and branch_ratio <= 1.15 and fanout <= 1.3
    # The learner's schedule is reported against parallel, not gated on it: on a workload with a
    # dependent call no safe schedule matches parallel (see RESULTS.md, Learning).
    met = met and learned.rate >= 2000 and learned.p95 < 1 and learned.schedule_hazards == 0
    met = met and sweep_ratio >= 5 and cancel_s <= 2
    met = met and budget_share >= 0.9 and caching and tree_fits
    met = met and left_per_item <= big_run.TARGET and scaled and fair_ratio <= 2
    met = met and tokens_held
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
