"""One trial of a scale workload on one system: submit, wait for the result, measure.

A trial runs on a system started fresh for it (``benchmarks/throughput/systems.py``): a warm-up run
of the same workload first (``S1`` records it: the first run of fresh workers), then the measured
run.
"""

from __future__ import annotations

import gc
import heapq
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from celery import chord

from benchmarks.throughput.systems import System
from orchestrator import AgentSpec, ModelConfig

GATE_WAIT_S = 8.0
"""How long a trial waits for an idle machine before its measured run (the busy share it saw
is reported)."""


@dataclass(frozen=True)
class Workload:
    """``members`` of ``latency_ms`` (+- ``jitter_ms``) under ``cap``, and a reduce that takes
    the members' latency when ``reduce_too`` (else none)."""

    name: str
    members: int
    cap: int
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    reduce_too: bool = False


@dataclass
class Figures:
    """What one trial measured."""

    wall_s: float
    bound_s: float  # the list-schedule bound of the run's own durations on its slots
    first_s: float = 0.0  # the warm-up run (the first of fresh workers)
    cpu_s: list[float] = field(default_factory=list)  # per process, the measured run
    commands: float = 0.0  # Redis commands per member, the measured run
    rss_mb: float = 0.0  # every process of the system, after the runs
    busy: float = 0.0  # the machine's busy share the idle gate last saw before the run

    @property
    def efficiency(self) -> float:
        return self.bound_s / self.wall_s


def idle_gate(max_busy: float = 0.25, wait_s: float = 20.0) -> float:
    """Wait (up to ``wait_s``) until the machine's CPUs were at most ``max_busy`` busy over
    half a second; returns the busy share last seen."""
    deadline = time.monotonic() + wait_s
    while True:
        first = _cpu_times()
        time.sleep(0.5)
        second = _cpu_times()
        busy = 1 - (second[1] - first[1]) / max(second[0] - first[0], 1)
        if busy <= max_busy or time.monotonic() > deadline:
            return busy


def _cpu_times() -> tuple[int, int]:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]  # total, idle + iowait


def makespan(durations_s: list[float], slots: int) -> float:
    """Greedy list scheduling in order: each job starts on the earliest free slot."""
    free_at = [0.0] * min(slots, max(len(durations_s), 1))
    for duration in durations_s:
        heapq.heappush(free_at, heapq.heappop(free_at) + duration)
    return max(free_at)


def _commands(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


def _durations(w: Workload, seed: int) -> tuple[list[float], float]:
    """The bare chord's member and body durations (ms): as the scripted model draws them."""
    if not w.jitter_ms:
        return [w.latency_ms] * w.members, (w.latency_ms if w.reduce_too else 0.0)
    rng = random.Random(seed)
    durations = [rng.uniform(w.latency_ms - w.jitter_ms, w.latency_ms + w.jitter_ms)
                 for _ in range(w.members)]  # fmt: skip
    body = rng.uniform(w.latency_ms - w.jitter_ms, w.latency_ms + w.jitter_ms)
    return durations, body if w.reduce_too else 0.0


def run_bare(s: System, w: Workload, slots: int, seed: int) -> tuple[float, float]:
    """(wall, bound) of a bare chord: one task per member (noop at zero latency), a body."""
    assert s.bare is not None
    durations, body_ms = _durations(w, seed)
    if any(durations):
        header = [s.bare.signature("bare.sleep_ms", args=(d,)) for d in durations]
    else:
        header = [s.bare.signature("bare.noop", args=(i,)) for i in range(w.members)]
    body = s.bare.signature("bare.sleep_ms", args=(body_ms,), immutable=True)
    started = time.perf_counter()
    result = chord(header)(body)
    result.get(timeout=600)
    wall = time.perf_counter() - started
    del result
    gc.collect()  # drop the chord's result objects while their backend is still up
    bound = makespan([d / 1000 for d in durations], slots) + body_ms / 1000
    return wall, bound


def run_ours(s: System, w: Workload, seed: int) -> tuple[float, float]:
    """(wall, bound) of a map-reduce: the bound from its members' own durations on ``cap``
    slots plus its reducer's."""
    assert s.client is not None
    options: dict[str, float] = {}
    if w.latency_ms:
        options = {"latency_ms": w.latency_ms, "jitter_ms": w.jitter_ms, "seed": seed}
    model = ModelConfig(provider="scripted", options=options)
    reducer_model = model if w.reduce_too else ModelConfig(provider="scripted")
    mapper, reducer = AgentSpec(name="m", model=model), AgentSpec(name="r", model=reducer_model)
    items = [f"item {i}" for i in range(w.members)]
    started = time.perf_counter()
    handle = s.client.map_reduce("Bench", items, mapper, reducer, max_concurrent=w.cap)
    result = handle.result(timeout=600)
    wall = time.perf_counter() - started
    assert len(result.map_outputs) == w.members and result.all_succeeded(), "a member failed"
    assert result.reducer_output is not None and result.reducer_output.outcome == "ok"
    mapped = [o.duration_ms / 1000 for o in result.map_outputs]
    if w.latency_ms and not w.jitter_ms:  # nominal: the members' latency, not their durations
        mapped = [w.latency_ms / 1000] * w.members
    return wall, makespan(mapped, w.cap) + result.reducer_output.duration_ms / 1000


def trial(s: System, w: Workload, slots: int, seed: int) -> Figures:
    """Warm-up, then the measured run, on system ``s`` (``slots``: a bare chord's cap)."""

    def once(run_seed: int) -> tuple[float, float]:
        if s.bare is not None:
            return run_bare(s, w, slots, run_seed)
        return run_ours(s, w, run_seed)

    first, _ = once(seed * 2 + 1)
    busy = idle_gate(wait_s=GATE_WAIT_S)
    state = redis.Redis.from_url(s.url)
    before = _commands(state)
    s.mark()
    wall, bound = once(seed * 2 + 2)
    cpu = s.cpu_s()
    commands = (_commands(state) - before) / w.members
    return Figures(wall, bound, first, cpu, commands, s.rss_mb(), busy)
