"""How fast a cancel and a deadline end a run.

(a) 8 members inside 60 s model calls (a local server speaking the OpenAI wire format, which
never answers within the round): the time from ``cancel()`` to the run's end as the waiting
client sees it, and to the server seeing every connection closed. The baseline is what the
calls would otherwise take (60 s); target: the run ends within 2 s.
(b) a 100,000-item map-reduce (cap 8, members in long scripted calls) with ``deadline_s=2``:
the time from the deadline to the run's end; target: a few seconds.
"""

from __future__ import annotations

import statistics
import time

from benchmarks.harness import cluster, write_section
from orchestrator import AgentSpec, ModelConfig
from orchestrator.state.keys import RunKeys
from tests.servers.model_server import SlowModelServer

ROUNDS = 3
CALL_S = 60.0


def cancel_round(api: SlowModelServer) -> tuple[float, float]:
    with cluster(1, 8) as bench:
        mapper = api.agent("mapper")
        items = [f"item-{i}" for i in range(8)]
        reducer = AgentSpec(name="reducer")
        before = len(api.received)
        handle = bench.client.map_reduce("Cancel", items, mapper, reducer, 8)
        if not api.wait_until(lambda: len(api.received) - before == 8, 60):
            raise RuntimeError("the members never reached the server")
        closed_before = len(api.abandoned)
        started = time.monotonic()
        handle.cancel()
        handle.wait(timeout=CALL_S)
        ended = time.monotonic() - started
        api.wait_until(lambda: len(api.abandoned) - closed_before == 8, CALL_S)
        return ended, time.monotonic() - started


def deadline_round() -> float:
    with cluster(1, 8) as bench:
        mapper = AgentSpec(name="mapper", model=ModelConfig(options={"latency_ms": 600_000}))
        items = [f"item-{i}" for i in range(100_000)]
        handle = bench.client.map_reduce(
            "Huge", items, mapper, AgentSpec(name="reducer"), 8, deadline_s=2
        )
        created = bench.client.store.now_ms()  # within milliseconds of the run's creation
        handle.wait(timeout=300)
        ended = int(bench.client.redis.hget(RunKeys(handle.id).run, "ended_ms") or 0)
        return (ended - created) / 1000 - 2


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f} - {max(values):.2f})"


def main() -> float:
    import os

    api = SlowModelServer(delay_s=CALL_S)
    os.environ.update(api.worker_env())  # the benchmark's workers inherit the environment
    try:
        cancels = [cancel_round(api) for _ in range(ROUNDS)]
    finally:
        api.close()
    overruns = [deadline_round() for _ in range(ROUNDS)]
    ended = [c[0] for c in cancels]
    closed = [c[1] for c in cancels]
    body = f"""
(a) 8 members inside {CALL_S:.0f} s model calls, 1 worker x 8 threads, {ROUNDS} rounds:

| measure | median (min - max) |
| --- | --- |
| `cancel()` to the run's end, seen by the waiting client | {spread(ended)} |
| `cancel()` to the server seeing all 8 connections closed | {spread(closed)} |
| what the calls would have taken | {CALL_S:.0f} s |

Target: the run ends within 2 s of `cancel()`.

(b) 100,000-item map-reduce, cap 8, `deadline_s=2`, {ROUNDS} rounds: the run ended
{spread(overruns)} after its deadline: the run's sweep is due at its deadline, the running
members are stopped, the unstarted ones end in bulk, then the result of 100,000 outputs is
built and stored.
"""
    write_section("Cancel and deadline", body)
    print(body)
    return statistics.median(ended)


if __name__ == "__main__":
    main()
