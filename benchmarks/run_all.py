"""Run every benchmark and write benchmarks/RESULTS.md; exits non-zero if a target is missed."""

from __future__ import annotations

import sys

from benchmarks import (
    branches,
    budget,
    cache_governor,
    cancel,
    efficiency,
    learning,
    overhead,
    tools,
    watchdog,
)


def main() -> int:
    ratio = overhead.main()
    parallel = efficiency.main()
    branch_ratio = branches.main()
    fanout = tools.main()
    rate, p95, speedup = learning.main()
    sweep_ratio = watchdog.main()
    cancel_s = cancel.main()
    budget_share = budget.main()  # 0 when any round passed max_tokens
    caching = cache_governor.main()
    met = ratio <= 1.3 and parallel >= 0.9 and branch_ratio <= 1.15 and fanout <= 1.3
    met = met and rate >= 2000 and p95 < 1 and speedup >= 3.5 and sweep_ratio >= 5 and cancel_s <= 2
    met = met and budget_share >= 0.9 and caching
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
