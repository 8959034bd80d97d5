"""Fair sharing between runs of one concurrency group (issue 12, item 5).

A 10-item map-reduce alone, against the same 10-item run submitted while a 5,000-item run of
the same group fills the group's limit: scripted members of 200 ms, a group limit of 20, 3
workers. The small run's time is from submit to its result; rounds alternate the two cases
on the same workers (the big run is cancelled once the small one has its result).

Why 200 ms: 20 slots of 50 ms would be 400 members a second, more than a 2-core machine that
runs the workers, Redis and the client can carry, so the small run would measure the CPU the
big run takes, not the order the group admits in. The workers serve no learner queue, as in
the overhead benchmark, for the same reason (each member's record would be one more task).

Target: the small run beside the big one takes at most twice its time alone (median ratio).

``python -m benchmarks.throughput.fairness --quick`` runs a short version and prints it without
writing RESULTS.md.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import dataclass

from benchmarks.harness import cluster, rounds_table, write_section
from orchestrator import AgentSpec, Client, ModelConfig
from orchestrator.state import groups as group_limits

GROUP, LIMIT = "bench", 20
LATENCY_MS = 200
SMALL_ITEMS = 10
WORKERS, CONCURRENCY = 3, 12
QUEUES = ("coordinator", "agents", "tools")


@dataclass(frozen=True)
class Mode:
    """How big the big run is and how many rounds are measured."""

    big_items: int
    rounds: int


FULL = Mode(big_items=5000, rounds=5)
QUICK = Mode(big_items=1000, rounds=2)


def agent(name: str) -> AgentSpec:
    return AgentSpec(
        name=name, model=ModelConfig(provider="scripted", options={"latency_ms": LATENCY_MS})
    )


def small_run_s(client: Client) -> float:
    """Seconds from submitting the small run to holding its result."""
    items = [f"small-{i}" for i in range(SMALL_ITEMS)]
    started = time.perf_counter()
    handle = client.map_reduce(
        "Small", items, agent("mapper"), agent("reducer"), SMALL_ITEMS, group=GROUP
    )
    result = handle.result(timeout=300)
    wall = time.perf_counter() - started
    assert all(o.outcome == "ok" for o in result.map_outputs), "a small-run member failed"
    return wall


def beside_big_run_s(client: Client, mode: Mode) -> float:
    """The small run's time while a big run of the group holds every slot."""
    items = [f"big-{i}" for i in range(mode.big_items)]
    big = client.map_reduce("Big", items, agent("mapper"), agent("reducer"), 100, group=GROUP)
    deadline = time.monotonic() + 60
    while group_limits.in_flight(client.redis, GROUP) < LIMIT:
        if time.monotonic() > deadline:
            raise RuntimeError("the big run never filled the group")
        time.sleep(0.01)
    try:
        wall = small_run_s(client)
        if big.status().state != "running":
            raise RuntimeError("the big run ended before the small one: make it bigger")
        return wall
    finally:
        big.cancel()
        big.wait(timeout=120)


def main(mode: Mode = FULL) -> float:
    env = {"ORCHESTRATOR_GROUP_LIMITS": json.dumps({GROUP: LIMIT})}
    with cluster(WORKERS, CONCURRENCY, QUEUES, worker_env=env) as bench:
        small_run_s(bench.client)  # warm-up
        pairs = [
            (small_run_s(bench.client), beside_big_run_s(bench.client, mode))
            for _ in range(mode.rounds)
        ]
    ratio = statistics.median(beside / alone for alone, beside in pairs)
    verdict = "met" if ratio <= 2 else "NOT met"
    rows = rounds_table(["alone (s)", f"beside {mode.big_items} items (s)", "ratio"], pairs)
    body = f"""
A {SMALL_ITEMS}-item map-reduce (cap {SMALL_ITEMS}) in group `{GROUP}` (limit {LIMIT}), alone
and submitted while a {mode.big_items}-item map-reduce of the same group (cap 100) holds all
{LIMIT} slots; scripted members of {LATENCY_MS} ms, {WORKERS} workers x {CONCURRENCY} threads
(no learner queue), alternating rounds after a warm-up. Time from submit to the small run's
result.

{rows}

Median ratio: **{ratio:.2f}** (target <= 2: {verdict}). Freed slots go round-robin between the
group's runs, so the small run gets every other slot from its first turn on, instead of
waiting behind the big run's {mode.big_items} members.
"""
    if mode is FULL:
        write_section("Fair sharing: a small run beside a big one in one group", body)
    print(body)
    return ratio


if __name__ == "__main__":
    main(QUICK if "--quick" in sys.argv[1:] else FULL)
