"""Recovery from a worker host cut off mid-run, on hosts built as network namespaces.

Five hosts (``tests/deploy/multi_host.py``): Redis, three workers of three slots each, a client.
Each round runs the same map-reduce of six members (all at once) twice, from the same point: the
moment every member has started; the victim is the host running the most of them.

(a) Baseline: nothing happens; the time from that point to the client having its result.
(b) Cut: the victim's link goes down at that point and stays down until the run has finished
(a host that is gone); the time from the cut to the client having its result, and from the cut
to the first of the victim's members starting again on another host (the takeover).

Six members on nine slots: the two hosts left have a free slot for each member they take over,
so the takeover measures the lease and the sweep, not a wait for a slot. Between
rounds the victim is plugged back in and the next round waits until it is back (its stale
executions discarded, its presence renewed). The ratio (b) / (a) and the difference (b) -
(a) give the recovery window: about lease + sweep interval + one re-run of the member.

Needs root and ``ip netns`` (as the multi-host tests); prints why and returns None if not.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import write_section
from tests.conftest import FAST_TIMINGS
from tests.deploy.multi_host import (
    WORKER_HOSTS,
    ClientRun,
    Hosts,
    run_again_elsewhere,
    running_hosts,
    starts_by_index,
    wait_for,
)
from tests.deploy.netns import namespaces_unavailable

ROUNDS = 5
SLOTS = 3
ITEMS = MAX_CONCURRENT = 6
LATENCY_MS = 2000
LEASE_S = FAST_TIMINGS["ORCHESTRATOR_LEASE_S"]
SWEEP_S = FAST_TIMINGS["ORCHESTRATOR_SWEEP_S"]


def mid_run(hosts: Hosts, run: ClientRun) -> tuple[str, set[int]]:
    """Wait until every member of ``run`` has started (one window: they all run at once);
    return the host running the most of them (the victim) and its members."""
    found: list[tuple[str, set[int]]] = []

    def point() -> bool:
        starts = starts_by_index(hosts.events(run.run_id))
        running: dict[str, set[int]] = {host: set() for host in WORKER_HOSTS}
        for index, started in starts.items():
            if index is not None:
                running[hosts.host_of(started[-1].worker)].add(index)
        busiest = max(WORKER_HOSTS, key=lambda host: len(running[host]))
        found[:] = [(busiest, running[busiest])]
        return sum(len(members) for members in running.values()) == ITEMS

    wait_for(point, "every member started", 120)
    return found[0]


def baseline(hosts: Hosts) -> float:
    """Seconds from the point a cut would come at to the result, nothing cut."""
    run = hosts.submit(ITEMS, LATENCY_MS, MAX_CONCURRENT)
    mid_run(hosts, run)
    started = time.monotonic()
    run.result()
    return time.monotonic() - started


def with_cut(hosts: Hosts) -> tuple[float, float]:
    """Seconds from the cut to the first takeover, and from the cut to the result."""
    run = hosts.submit(ITEMS, LATENCY_MS, MAX_CONCURRENT)
    victim, held = mid_run(hosts, run)
    hosts.network.cut(victim)
    cut_at = time.monotonic()
    try:
        wait_for(run_again_elsewhere(hosts, run.run_id, held, victim), "a takeover", 120)
        takeover = time.monotonic() - cut_at
        run.result()
        finished = time.monotonic() - cut_at
    finally:
        hosts.network.restore(victim)
    rejoin(hosts, victim, run.run_id, held)
    return takeover, finished


def rejoin(hosts: Hosts, victim: str, run_id: str, held: set[int]) -> None:
    """Wait until the victim is back: its stale executions ended (dropped without a result)
    and its presence renewed."""
    from orchestrator.state.keys import member_task_id
    from orchestrator.state.presence import live_workers

    starts = starts_by_index(hosts.events(run_id))
    rerun = [i for i in held if len(starts.get(i, [])) > 1]

    def back() -> bool:
        log = hosts.log(victim)
        ended = all(f"run_member[{member_task_id(run_id, i)}] ignored" in log for i in rerun)
        return ended and hosts.workers[victim].hostname in live_workers(hosts.redis.client)

    wait_for(back, "the victim rejoined", 120)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f} - {max(values):.2f})"


def main(write: bool = True) -> float | None:
    """Run the rounds; return the median ratio cut / baseline (None when skipped)."""
    reason = namespaces_unavailable()
    if reason is not None:
        print(f"host_cut: skipped: {reason}")
        return None
    env = {**FAST_TIMINGS, "ORCHESTRATOR_MEMBERS_PER_MESSAGE": "1"}
    rounds: list[tuple[float, float, float]] = []
    logs = Path(tempfile.mkdtemp(prefix="ao-bench-host-cut-"))
    with running_hosts(logs, env, slots=SLOTS) as hosts:
        baseline(hosts)  # warm-up: imports, connections, the first queue declarations
        for _ in range(ROUNDS):
            base = baseline(hosts)
            takeover, finished = with_cut(hosts)
            rounds.append((base, takeover, finished))
    bases = [r[0] for r in rounds]
    takeovers = [r[1] for r in rounds]
    cuts = [r[2] for r in rounds]
    ratios = [c / b for b, _, c in rounds]
    extra = [c - b for b, _, c in rounds]
    table = "\n".join(
        [
            "| round | baseline (s) | cut: to takeover (s) | cut: to result (s) | ratio |",
            "| --- | --- | --- | --- | --- |",
            *(
                f"| {n} | {b:.2f} | {t:.2f} | {c:.2f} | {c / b:.2f} |"
                for n, (b, t, c) in enumerate(rounds, 1)
            ),
        ]
    )
    heartbeat = FAST_TIMINGS["ORCHESTRATOR_HEARTBEAT_S"]
    body = f"""Three worker hosts (network namespaces, {SLOTS} slots each), a map-reduce of
{ITEMS} items of {LATENCY_MS} ms, all at once; lease {LEASE_S} s, heartbeat
{heartbeat} s, sweep interval {SWEEP_S} s (workers and client). Measured from the moment every
member has started: with nothing cut (baseline), and with the link of the host running the
most members cut then (kept down until the run finished).
{ROUNDS} rounds, median (min - max).

{table}

Baseline {spread(bases)}; cut: takeover {spread(takeovers)}, result {spread(cuts)}.
**Median ratio {statistics.median(ratios):.2f}**; the cut costs {spread(extra)} more: the
lease running out, the sweep that finds it, and the member run again from its start."""
    print(body)
    if write:
        write_section("Worker host cut off (network namespaces)", body)
    return statistics.median(ratios)


if __name__ == "__main__":
    main(write="--print-only" not in sys.argv)
