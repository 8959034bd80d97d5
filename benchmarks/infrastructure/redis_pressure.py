"""A Redis under pressure: full (``maxmemory`` reached under ``noeviction``), then freed; and
slow (every command delayed by a proxy).

Full: each round starts a private Redis and two workers of 8 slots with the default timings
(lease 30 s, heartbeat 2 s, sweep 5 s), submits a map-reduce of 16 mappers of 1 s at cap 16,
fills Redis once all 16 run, keeps it full until every mapper waits with its output (and for
``--full-s`` at least), frees it and times from the freeing to the run's result. The same
round times an unfilled run of the same shape from its 16th start to its result: what the run
has left to do without the outage.

Slow: a run of 16 mappers of 2 s at cap 16 on two workers of 8 slots, default timings, every
command the workers send delayed by 0, 200 ms, then 2 s (the whole run): seconds from submit
to result, and members started more than once (must be 0).

    python -m benchmarks.infrastructure.redis_pressure [--rounds N] [--full-s S] [--print-only]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import redis

from benchmarks.harness import write_section
from orchestrator import AgentSpec, Client, ModelConfig, RunHandle
from orchestrator.local import LocalRedis, LocalWorker, wait_for_workers
from orchestrator.state.events import AgentStart
from tests.deploy.delay_proxy import DelayProxy

ROUNDS = 3
ITEMS = 16
WAITING = "its output is kept until Redis has room"


def agent(name: str, latency_ms: int = 0) -> AgentSpec:
    return AgentSpec(
        name=name, model=ModelConfig(provider="scripted", options={"latency_ms": latency_ms})
    )


def starts(handle: RunHandle) -> Counter[str]:  # type: ignore[type-arg]
    return Counter(e.name for e in handle.events(follow=False) if isinstance(e, AgentStart))


def wait_until(check: object, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"never happened: {what}")
        time.sleep(0.02)


def full_round(logs: Path, tag: str, full_s: float) -> tuple[float, float, int]:
    """(seconds from freeing Redis to the result, seconds from the 16th start to the result of
    an unfilled run, members started more than once)."""
    server = LocalRedis()
    env = {"ORCHESTRATOR_REDIS_URL": server.url}
    workers = [
        LocalWorker(f"{tag}-{n}", env, concurrency=8, log_path=logs / f"{tag}-{n}.log")
        for n in ("a", "b")
    ]
    try:
        state = redis.Redis.from_url(server.url)
        wait_for_workers(state, [w.hostname for w in workers], timeout_s=60)
        client = Client(redis_url=server.url)
        items = [f"item {i}" for i in range(ITEMS)]

        def submit() -> RunHandle:  # type: ignore[type-arg]
            handle = client.map_reduce("Full", items, agent("m", 1000), agent("r"), ITEMS)
            wait_until(lambda: sum(starts(handle).values()) >= ITEMS, "every mapper runs")
            return handle

        plain = submit()
        started = time.perf_counter()
        plain.result(timeout=120)
        unfilled = time.perf_counter() - started

        handle = submit()
        state.config_set("maxmemory-policy", "noeviction")
        state.config_set("maxmemory", 1)
        filled = time.perf_counter()
        waiting = [logs / f"{tag}-{n}.log" for n in ("a", "b")]
        wait_until(
            lambda: sum(log.read_text().count(WAITING) for log in waiting) >= ITEMS,
            "every mapper waits with its output",
        )
        time.sleep(max(0.0, full_s - (time.perf_counter() - filled)))
        state.config_set("maxmemory", 0)
        freed = time.perf_counter()
        result = handle.result(timeout=300)
        recovery = time.perf_counter() - freed
        assert result.all_succeeded() and len(result.map_outputs) == ITEMS
        assert all(w.process.poll() is None for w in workers), "a worker died"
        twice = sum(1 for count in starts(handle).values() if count > 1)
        return recovery, unfilled, twice
    finally:
        for worker in workers:
            worker.kill()
        server.stop()


def slow_round(logs: Path, tag: str, delay_s: float) -> tuple[float, int]:
    """(seconds from submit to result with every worker command ``delay_s`` late, members
    started more than once)."""
    server = LocalRedis()
    proxy = DelayProxy(server.port)
    env = {"ORCHESTRATOR_REDIS_URL": proxy.url()}
    workers = [
        LocalWorker(f"{tag}-{n}", env, concurrency=8, log_path=logs / f"{tag}-{n}.log")
        for n in ("a", "b")
    ]
    try:
        wait_for_workers(redis.Redis.from_url(server.url), [w.hostname for w in workers], 60)
        client = Client(redis_url=server.url)
        proxy.delay_s = delay_s
        items = [f"item {i}" for i in range(ITEMS)]
        started = time.perf_counter()
        handle = client.map_reduce("Slow", items, agent("m", 2000), agent("r"), ITEMS)
        result = handle.result(timeout=600)
        elapsed = time.perf_counter() - started
        assert result.all_succeeded() and len(result.map_outputs) == ITEMS
        twice = sum(1 for count in starts(handle).values() if count > 1)
        return elapsed, twice
    finally:
        proxy.delay_s = 0
        for worker in workers:
            worker.kill()
        proxy.close()
        server.stop()


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f} - {max(values):.2f})"


def main(rounds: int = ROUNDS, full_s: float = 10.0, write: bool = True) -> None:
    logs = Path(tempfile.mkdtemp(prefix="ao-bench-pressure-"))
    full = [full_round(logs, f"full{n}", full_s) for n in range(rounds)]
    for number, (recovery, unfilled, _) in enumerate(full, 1):
        print(f"full round {number}: {recovery:.2f} s after freeing, {unfilled:.2f} s unfilled")
    delays = (0.0, 0.2, 2.0)
    slow: dict[float, list[tuple[float, int]]] = {delay: [] for delay in delays}
    for number in range(rounds):
        for delay in delays:
            slow[delay].append(slow_round(logs, f"slow{number}-{delay:g}", delay))
            print(f"slow round {number + 1}, delay {delay:g} s: {slow[delay][-1][0]:.2f} s")
    recoveries, unfilled = [f[0] for f in full], [f[1] for f in full]
    full_rows = [
        f"| {n} | {r:.2f} | {u:.2f} | {r - u:.2f} | {t} |" for n, (r, u, t) in enumerate(full, 1)
    ]
    base = statistics.median(e for e, _ in slow[0.0])
    slow_rows = [
        f"| {delay * 1000:g} ms | {spread([e for e, _ in slow[delay]])} | "
        f"{statistics.median(e for e, _ in slow[delay]) / base:.2f} | "
        f"{sum(t for _, t in slow[delay])} |"
        for delay in delays
    ]
    body = "\n".join(
        [
            "`python -m benchmarks.infrastructure.redis_pressure`: two workers of 8 slots, "
            f"default timings (lease 30 s, heartbeat 2 s, sweep 5 s), {rounds} rounds.",
            "",
            f"### Recovery after a full Redis is freed ({ITEMS} mappers of 1 s, cap {ITEMS})",
            "",
            f"Redis filled (`maxmemory 1`, `noeviction`) once all {ITEMS} mappers run, freed "
            f"once all wait with their outputs and at least {full_s:g} s passed. Seconds from "
            "the freeing to the result, against an unfilled run of the same shape from its "
            f"{ITEMS}th start to its result (its remaining mapper second and the reduce). The "
            "filled run's mappers ended their model calls while Redis was full: what it has "
            "left once freed is its mappers' next try (2 s apart at most, all in step here, "
            "so a round takes about 0.2 s or 2 s depending on where the freeing falls) and "
            "the reduce.",
            "",
            "| round | freed -> result | unfilled: last start -> result | difference | "
            "members started twice |",
            "| --- | --- | --- | --- | --- |",
            *full_rows,
            "",
            f"Median (min - max): {spread(recoveries)} s after freeing; unfilled "
            f"{spread(unfilled)} s.",
            "",
            f"### Slow Redis ({ITEMS} mappers of 2 s, cap {ITEMS}, every worker command delayed)",
            "",
            "Seconds from submit to result, median (min - max) over the rounds, against no "
            "delay; members started more than once, summed over the rounds.",
            "",
            "| delay per command | submit -> result | / no delay | members started twice |",
            "| --- | --- | --- | --- |",
            *slow_rows,
        ]
    )
    print(body)
    if write:
        write_section("Redis under pressure: full, then freed; slow", body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--full-s", type=float, default=10.0)
    parser.add_argument("--print-only", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args()
    main(args.rounds, args.full_s, write=not args.print_only)
