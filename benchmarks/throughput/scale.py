"""Scale: a map-reduce against a bare Celery chord, each on the same processes and threads.

W1: 1,000 zero-latency members and a reduce, cap 64: wall time.
W2: 64 members of 200 +- 50 ms and a reduce of as long, cap 8: efficiency against the
list-schedule bound of the members' own durations.
W3: 1,000 members of 50 ms, cap 50: efficiency against the nominal bound (1.0 s).
S1: 1,000 members of 1 s, cap 1,000: wall time, first run of fresh workers and warm; RSS.

Two layouts. *Default*: what ``orchestrator worker`` starts with no options (a process per
core, 500 threads each, every queue, the learner's included; its supervisor counted in RSS),
and the bare chord on as many Celery processes of 500 threads. *Benchmark*: the layouts this
benchmark used before issue 29, a layout per workload whose slots equal its cap (W1 2 x 8,
W2 2 x 4, W3 2 x 25, S1 2 x 500; no learner queue), the bare chord on the same. The bare chord
is Celery alone (``benchmarks/throughput/bare_app.py``: Celery's defaults plus JSON), published by
the client, one task per member; its only cap is its slots. Every trial starts its system fresh,
runs the workload once (S1 reports it: the first run) and then measures it; sides alternate
which goes first, each repetition; before each measured run the machine must be idle
(``idle_gate``: at most 25% busy over half a second, waited for up to 8 s; the busy share it
last saw is reported: the machine is shared).

Targets, on the default layout: W1 <= 0.5x the bare chord's wall, W2 >= 0.985, W3 >= 0.85,
S1 <= 1.5 s first run and warm with RSS <= 400 MB (supervisor included).

``python -m benchmarks.throughput.scale [--quick] [--layout default|bench|both]``: ``--quick`` runs
one repetition with smaller sizes and writes nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from benchmarks.harness import Cluster, drop_section, write_section
from benchmarks.throughput.scale_trials import Figures, Workload, idle_gate, trial
from benchmarks.throughput.systems import System, bare, ours_default, ours_layout
from orchestrator import AgentSpec, ModelConfig
from orchestrator.cli.launcher import DEFAULT_THREADS, default_processes

REPETITIONS = 3
INTRO = (__doc__ or "").split("\n\n", 1)[1].split("``python")[0]
BENCH_THREADS = {"W1": 8, "W2": 4, "W3": 25, "S1": 500}
COST_HEADERS = ["workload", "map-reduce CPU s", "bare CPU s", "map-reduce cmds/member",
                "bare cmds/member"]  # fmt: skip
Starter = Callable[[], AbstractContextManager[System]]


__all__ = ["idle_gate", "main", "map_reduce", "spread", "table"]  # the others' helpers too


def map_reduce(
    c: Cluster, members: int, cap: int, options: dict[str, float], reduce_too: bool = False
) -> tuple[float, list[float], float]:
    """Wall seconds of a map-reduce on ``c``, its mappers' durations and its reducer's
    (seconds); the reducer takes the mappers' latency with ``reduce_too``, else none. (The
    store-paths and failover benchmarks measure W1 with it.)"""
    model = ModelConfig(provider="scripted", options=options)
    reducer_model = model if reduce_too else ModelConfig(provider="scripted")
    mapper, reducer = AgentSpec(name="m", model=model), AgentSpec(name="r", model=reducer_model)
    items = [f"item {i}" for i in range(members)]
    started = time.perf_counter()
    handle = c.client.map_reduce("Bench", items, mapper, reducer, max_concurrent=cap)
    result = handle.result(timeout=600)
    elapsed = time.perf_counter() - started
    assert len(result.map_outputs) == members and result.all_succeeded(), "a member failed"
    assert result.reducer_output is not None and result.reducer_output.outcome == "ok"
    durations = [o.duration_ms / 1000 for o in result.map_outputs]
    return elapsed, durations, result.reducer_output.duration_ms / 1000


def workloads(quick: bool) -> list[Workload]:
    many = 300 if quick else 1000
    return [
        Workload("W1", many, 64),
        Workload("W2", 32 if quick else 64, 8, 200, 50, reduce_too=True),
        Workload("W3", many, 50, 50),
        Workload("S1", many, many, 1000),
    ]


def systems(layout: str, w: Workload) -> tuple[Starter, Starter, int]:
    """(our system, the bare one, the bare chord's slots) of ``layout`` for ``w``."""
    if layout == "default":
        processes = default_processes()
        return ours_default, lambda: bare(processes, DEFAULT_THREADS), processes * DEFAULT_THREADS
    threads = BENCH_THREADS[w.name]
    return lambda: ours_layout(2, threads), lambda: bare(2, threads), 2 * threads


def measure(layout: str, quick: bool) -> dict[str, list[tuple[Figures, Figures]]]:
    """(ours, bare) figures of each repetition, by workload."""
    pairs: dict[str, list[tuple[Figures, Figures]]] = {}
    for repetition in range(1 if quick else REPETITIONS):
        for w in workloads(quick):
            ours, baseline, slots = systems(layout, w)
            sides = [("ours", ours), ("bare", baseline)]
            if repetition % 2:
                sides.reverse()
            got: dict[str, Figures] = {}
            for side, start in sides:
                with start() as system:
                    got[side] = trial(system, w, slots, repetition)
                print(f"{layout} {w.name} rep {repetition + 1} {side}: {got[side]}", flush=True)
            pairs.setdefault(w.name, []).append((got["ours"], got["bare"]))
    return pairs


def spread(values: list[float], digits: int = 3) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:.{digits}f} ({low:.{digits}f} - {high:.{digits}f})"


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _cpu(figures: list[Figures]) -> str:
    """Per-process CPU seconds of the measured runs, busiest first, median of each rank."""
    ranked = [sorted(f.cpu_s, reverse=True) for f in figures]
    return " / ".join(
        f"{statistics.median(r[i] for r in ranked):.2f}" for i in range(len(ranked[0]))
    )


def report(layout: str, pairs: dict[str, list[tuple[Figures, Figures]]]) -> tuple[bool, str]:
    """The section's text, and whether the targets are met."""
    ours = {name: [o for o, _ in rows] for name, rows in pairs.items()}
    base = {name: [b for _, b in rows] for name, rows in pairs.items()}
    w1 = [o.wall_s / b.wall_s for o, b in pairs["W1"]]
    w2 = [o.efficiency for o in ours["W2"]]
    w3 = [o.efficiency for o in ours["W3"]]
    s1_first = [o.first_s for o in ours["S1"]]
    s1_warm = [o.wall_s for o in ours["S1"]]
    rss = [o.rss_mb for o in ours["S1"]]
    verdicts = {
        "W1": statistics.median(w1) <= 0.5,
        "W2": statistics.median(w2) >= 0.985,
        "W3": statistics.median(w3) >= 0.85,
        "S1": max(statistics.median(s1_first), statistics.median(s1_warm)) <= 1.5
        and statistics.median(rss) <= 400,
    }
    rows = [
        ["W1 wall, s", spread([o.wall_s for o in ours["W1"]], 2),
         spread([b.wall_s for b in base["W1"]], 2), f"ratio {spread(w1, 2)} (<= 0.5)"],
        ["W2 efficiency", spread(w2, 3), spread([b.efficiency for b in base["W2"]], 3),
         ">= 0.985"],
        ["W2 wall, s", spread([o.wall_s for o in ours["W2"]], 2),
         spread([b.wall_s for b in base["W2"]], 2), ""],
        ["W3 efficiency (nominal)", spread(w3, 3),
         spread([b.efficiency for b in base["W3"]], 3), ">= 0.85"],
        ["W3 wall, s", spread([o.wall_s for o in ours["W3"]], 2),
         spread([b.wall_s for b in base["W3"]], 2), ""],
        ["S1 first run, s", spread(s1_first, 2),
         spread([b.first_s for b in base["S1"]], 2), "<= 1.5"],
        ["S1 warm, s", spread(s1_warm, 2), spread([b.wall_s for b in base["S1"]], 2), "<= 1.5"],
        ["S1 RSS, MB", spread(rss, 0), spread([b.rss_mb for b in base["S1"]], 0), "<= 400"],
    ]  # fmt: skip
    costs = [
        [name, _cpu(ours[name]), _cpu(base[name]),
         f"{statistics.median(o.commands for o in ours[name]):.1f}",
         f"{statistics.median(b.commands for b in base[name]):.1f}"]
        for name in pairs
    ]  # fmt: skip
    met = [name for name, ok in verdicts.items() if ok]
    missed = [name for name, ok in verdicts.items() if not ok]
    gate = [f.busy for rows in pairs.values() for pair in rows for f in pair]
    text = f"""Medians of {len(pairs["W1"])} repetitions (min - max). The idle gate saw the machine
{statistics.median(gate):.0%} busy before the median run ({max(gate):.0%} at most).

{table(["workload", "map-reduce", "bare chord", "target"], rows)}

Met: {", ".join(met) or "none"}. **Not met: {", ".join(missed) or "none"}.**

Where the time goes, measured runs: CPU seconds of each process (supervisor and workers,
busiest first; the bare chord's client publishes in the benchmark's own process, not counted),
and Redis commands per member (INFO commandstats, every command of the run, those inside
scripts included; the map-reduce's also count the learner's ingestion of its records on the
default layout).

{table(COST_HEADERS, costs)}
"""
    return all(verdicts.values()), text


def main(quick: bool = False, layouts: tuple[str, ...] = ("default", "bench")) -> bool:
    met = True
    titles = {
        "default": "Scale on the default layout (orchestrator worker) against a bare Celery chord",
        "bench": "Scale on the benchmark's layouts (slots = cap) against a bare Celery chord",
    }
    for layout in layouts:
        ok, text = report(layout, measure(layout, quick))
        print(f"## {titles[layout]}\n\n{text}", flush=True)
        if layout == "default":
            met = ok
        if not quick:
            write_section(titles[layout], f"{INTRO}\n{text}")
    if not quick:  # measured before issue 29, with the bare chord on this project's workers
        drop_section("Scale: per-member cost and efficiency against a bare Celery chord")
    return met


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--layout", choices=["default", "bench", "both"], default="both")
    args = parser.parse_args()
    chosen = ("default", "bench") if args.layout == "both" else (args.layout,)
    sys.exit(0 if main(args.quick, chosen) else 1)
