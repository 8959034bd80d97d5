"""Learning: (a) learner throughput and the delay from a run's end to its plan being visible to
an agent worker; (b) ``sequential``, ``parallel`` and ``schedule`` on a workload where one tool
call depends on another (``benchmarks.agent_calls.dependent_tools``): throughput, and the calls each
ran together that were never observed together.

Targets: (a) >= 2,000 records/s for one learner process, p95 visibility < 1 s;
(b) the learner's claim: ``schedule`` with ``parallel``'s speed (throughput >= 0.9x) and
``sequential``'s safety (no dependent pair run together, no stale read).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from uuid import uuid4

import redis

from benchmarks.agent_calls import bench_tools
from benchmarks.agent_calls.dependent_tools import (
    PHASES,
    Tally,
    observed_pairs,
    run_batch,
    tally,
    telemetry_record,
)
from benchmarks.harness import cluster, write_section
from orchestrator import AgentSpec, Client, ModelConfig, ToolPolicy
from orchestrator.local import LocalRedis, LocalWorker, wait_for_workers
from orchestrator.models import CallRecord, RunRecord
from orchestrator.plans import PlanMode
from orchestrator.plans.keys import plan_seen_key
from orchestrator.plans.store import PlanStore
from orchestrator.state.events import RunEnd
from workers.agent.plan_cache import PlanCache

RECORDS, CALLS_PER_RECORD, AGENTS = 20_000, 10, 20
LOOKUPS = ["lookup_a", "lookup_b", "lookup_c", "lookup_d"]
# (b): agents started together per batch, alternating rounds, turns per agent, telemetry runs.
BATCH, ROUNDS, TURNS, TELEMETRY_RUNS = 12, 5, 2, 20


def synthetic_record(index: int) -> dict[str, object]:
    """A record of 10 tool calls, two at a time overlapping."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    calls = [
        CallRecord(
            kind="tool",
            name=f"tool{(index + i) % 7}",
            started_at=t0 + timedelta(seconds=i),
            ended_at=t0 + timedelta(seconds=i + 1.5),
        )
        for i in range(CALLS_PER_RECORD)
    ]
    agent = f"agent{index % AGENTS}"
    run = RunRecord(
        run_id=uuid4().hex, agent_name=agent, agent_id=agent, started_at=t0, calls=calls
    )
    return run.model_dump(mode="json")


def throughput() -> float:
    """Records per second ingested by one learner process (one thread)."""
    server = LocalRedis()
    env = {"ORCHESTRATOR_REDIS_URL": server.url}
    learner = LocalWorker("learner", env, queues=["learner"], concurrency=1)
    try:
        state = redis.Redis.from_url(server.url)
        wait_for_workers(state, [learner.hostname])
        client = Client(redis_url=server.url)
        batches = [
            [synthetic_record(i) for i in range(start, start + 100)]
            for start in range(0, RECORDS, 100)
        ]
        plans = PlanStore(state)
        started = time.perf_counter()
        for batch in batches:
            client.send_records(batch)
        seen_keys = [plan_seen_key(f"agent{a}") for a in range(AGENTS)]
        while sum(int(count or 0) for count in state.mget(seen_keys)) < RECORDS:
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        assert plans.get("agent0") is not None
        return RECORDS / elapsed
    finally:
        learner.stop()
        server.stop()


def lookup_agent(agent_id: str, mode: str) -> AgentSpec:
    """An agent making 4 independent 300 ms lookups per turn for 3 turns (visibility runs)."""
    turn = {"tool_calls": [{"name": name, "arguments": {"ms": 300}} for name in LOOKUPS]}
    script = [turn] * 3 + [{"text": "done"}]
    return AgentSpec(
        name="researcher",
        agent_id=agent_id,
        model=ModelConfig(provider="scripted", options={"script": script}),
        tools=LOOKUPS,
        tool_policy=ToolPolicy(mode=mode),
    )


def visibility(client: Client, samples: int = 20) -> list[float]:
    """Seconds from a run's RunEnd to its plan being visible through an agent worker's cache."""
    cache = PlanCache(client.plans)
    delays = []
    for _ in range(samples):
        agent_id = f"fresh-{uuid4().hex[:8]}"
        handle = client.run_agent(lookup_agent(agent_id, "parallel"), "go")
        handle.wait(30)
        ended = next(e.ts for e in handle.events(follow=False) if isinstance(e, RunEnd))
        while cache.get(agent_id) is None:
            time.sleep(0.005)
        delays.append(time.time() - ended)
    return delays


@dataclass(frozen=True)
class Arm:
    """One way of running the dependent workload, under its own agent id (so that no arm's
    runs teach another arm's plan)."""

    label: str
    source: str
    agent_id: str
    mode: str
    plan_mode: PlanMode
    explicit: bool = False


ARMS = [
    Arm("`sequential`", "-", "notes-sequential", "sequential", "observe_only"),
    Arm("`parallel` (the default)", "-", "notes-parallel", "parallel", "observe_only"),
    Arm("`schedule`", "safe telemetry", "notes-telemetry", "plan", "schedule"),
    Arm("`schedule`", "its own `parallel` runs", "notes-selftaught", "plan", "schedule"),
    Arm("`schedule`", "nothing: groups declared", "notes-explicit", "plan", "schedule", True),
]
SEQUENTIAL, PARALLEL, TAUGHT, SELF_TAUGHT, EXPLICIT = ARMS


class LearningFigures(NamedTuple):
    """What ``main`` measured."""

    rate: float
    """(a) records/s ingested by one learner process."""
    p95: float
    """(a) p95 seconds from a run's end to its plan being visible."""
    schedule_vs_parallel: float
    """(b) median throughput of ``schedule`` (taught by safe telemetry) over ``parallel``."""
    schedule_vs_sequential: float
    """(b) the same over ``sequential``."""
    schedule_hazards: int
    """(b) dependent pairs run together plus stale reads, ``schedule`` (safe telemetry)."""

    @property
    def met(self) -> bool:
        """Every target: (a), and (b) ``parallel``'s speed with ``sequential``'s safety."""
        learner = self.rate >= 2000 and self.p95 < 1
        return learner and self.schedule_vs_parallel >= 0.9 and self.schedule_hazards == 0


def wait_for_plan(client: Client, agent_id: str, records: int, timeout_s: float = 60) -> None:
    """Until the learners have ingested ``records`` records of ``agent_id``."""
    deadline = time.monotonic() + timeout_s
    while (plan := client.plan(agent_id)) is None or plan.records_seen < records:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the plan of {agent_id} saw too few records: {plan}")
        time.sleep(0.05)


def largest_groups(client: Client, agent_id: str) -> list[list[str]]:
    """The plan's learned groups that no other group contains."""
    plan = client.plan(agent_id)
    groups = [set(group.tool_names) for group in plan.parallel_groups] if plan else []
    return sorted(sorted(g) for g in groups if not any(g < other for other in groups))


def groups_text(groups: list[list[str]]) -> str:
    """``{a, b}; {c}``."""
    return "; ".join("{" + ", ".join(group) + "}" for group in groups) or "no group"


@dataclass
class Comparison:
    """What (b) measured."""

    seconds: dict[Arm, list[float]]
    """Wall seconds per round of each arm."""
    tallies: dict[Arm, Tally]
    """Each arm's overlaps over all rounds, against the safe telemetry."""
    own: Tally
    """The self-taught ``schedule``'s overlaps against its own learning data."""
    taught_groups: list[list[str]]
    self_groups: list[list[str]]

    def ratio(self, arm: Arm, baseline: Arm) -> list[float]:
        """Per round, the throughput of ``arm`` over that of ``baseline``."""
        rounds = zip(self.seconds[baseline], self.seconds[arm], strict=True)
        return [base / wall for base, wall in rounds]

    def median_ratio(self, arm: Arm, baseline: Arm) -> float:
        return statistics.median(self.ratio(arm, baseline))


def dependent(client: Client) -> Comparison:
    """Teach the two learned ``schedule`` arms, then run every arm in alternating rounds."""
    telemetry = [telemetry_record(TAUGHT.agent_id, TURNS, i) for i in range(TELEMETRY_RUNS)]
    for record in telemetry:
        client.record_run(record)
    # The default path: the same agent run under `parallel`, its records teaching its plan.
    _, warmup = run_batch(client, SELF_TAUGHT.agent_id, "parallel", "observe_only", BATCH, TURNS)
    wait_for_plan(client, TAUGHT.agent_id, TELEMETRY_RUNS)
    wait_for_plan(client, SELF_TAUGHT.agent_id, BATCH)
    time.sleep(0.6)  # let every worker's cache see the plans
    seconds: dict[Arm, list[float]] = {arm: [] for arm in ARMS}
    records: dict[Arm, list[RunRecord]] = {arm: [] for arm in ARMS}
    for number in range(ROUNDS):
        # Rotate the order each round, so that no arm always runs first or last.
        for arm in ARMS[number % len(ARMS) :] + ARMS[: number % len(ARMS)]:
            wall, batch = run_batch(
                client, arm.agent_id, arm.mode, arm.plan_mode, BATCH, TURNS, arm.explicit
            )
            seconds[arm].append(wall)
            records[arm].extend(batch)
    reference = observed_pairs(telemetry)
    return Comparison(
        seconds=seconds,
        tallies={arm: tally(records[arm], reference) for arm in ARMS},
        own=tally(records[SELF_TAUGHT], observed_pairs(warmup)),
        taught_groups=largest_groups(client, TAUGHT.agent_id),
        self_groups=largest_groups(client, SELF_TAUGHT.agent_id),
    )


def spread(values: list[float], unit: str = "", digits: int = 2) -> str:
    """Median and range: ``1.23x (1.20-1.30)``, the unit after the median."""
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:.{digits}f}{unit} ({low:.{digits}f}-{high:.{digits}f})"


def arms_table(result: Comparison) -> str:
    """One row per arm: wall time, throughput ratios per round, overlap counts in total."""
    lines = [
        "| policy | plan learned from | wall s per batch | throughput vs `parallel` "
        "| vs `sequential` | pairs run together | unsafe overlaps "
        "| dependent pairs together | stale reads |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for arm in ARMS:
        t = result.tallies[arm]
        cells = [
            arm.label,
            arm.source,
            spread(result.seconds[arm]),
            spread(result.ratio(arm, PARALLEL), "x"),
            spread(result.ratio(arm, SEQUENTIAL), "x"),
            f"{t.overlaps:,}",
            f"{t.unobserved:,}",
            f"{t.dependent:,}",
            f"{t.stale_reads:,} of {t.reads:,}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def is_safe(t: Tally) -> bool:
    """No dependent pair ran together and no read was stale."""
    return t.dependent == 0 and t.stale_reads == 0


def hazards_text(t: Tally) -> str:
    return f"{t.dependent} dependent pairs together and {t.stale_reads} stale reads"


def findings(result: Comparison) -> str:
    """The conclusions the measured figures support, in words."""
    taught, self_taught = result.tallies[TAUGHT], result.tallies[SELF_TAUGHT]
    taught_speed = result.median_ratio(TAUGHT, PARALLEL)
    self_speed = result.median_ratio(SELF_TAUGHT, PARALLEL)
    joined = any({"read_note", "write_note"} <= set(g) for g in result.self_groups)
    lines = [
        f"- Taught by safe telemetry, `schedule` ran at {taught_speed:.2f}x `parallel`'s "
        f"throughput and {result.median_ratio(TAUGHT, SEQUENTIAL):.2f}x `sequential`'s, with "
        f"{hazards_text(taught)}: {'safe' if is_safe(taught) else 'NOT safe'}, and "
        f"{'as fast as' if taught_speed >= 0.9 else 'slower than'} `parallel`.",
        f"- Taught by its own `parallel` runs, `schedule` ran at {self_speed:.2f}x `parallel`'s "
        f"throughput with {hazards_text(self_taught)}: "
        f"{'safe' if is_safe(self_taught) else 'NOT safe'}."
        + (
            " The learner learned the overlaps `parallel` produced, including the write running"
            " with its read, and `schedule` replayed them. Against its own learning data it ran"
            f" {result.own.unobserved} pairs never observed together: by that yardstick it"
            " looks safe, which is why the yardstick is the safe telemetry here."
            if joined
            else ""
        ),
        f"- The two phases declared as `parallel_groups`, with no learning, ran at "
        f"{result.median_ratio(EXPLICIT, TAUGHT):.2f}x the telemetry-taught `schedule`'s "
        f"throughput, with {hazards_text(result.tallies[EXPLICIT])}.",
    ]
    return "\n".join(lines)


def main() -> LearningFigures:
    """Run (a) and (b), write the Learning section of RESULTS.md, return the figures."""
    # Other processes may share the machine; the load says how busy it was for (a).
    load_before = os.getloadavg()[0]
    rate = throughput()
    load_after = os.getloadavg()[0]
    os.environ["ORCHESTRATOR_TOOL_MODULES"] = bench_tools.__name__
    with cluster(3, 8) as c:
        delays = visibility(c.client)
        result = dependent(c.client)
    p95 = sorted(delays)[int(0.95 * (len(delays) - 1))]
    taught = result.tallies[TAUGHT]
    figures = LearningFigures(
        rate=rate,
        p95=p95,
        schedule_vs_parallel=result.median_ratio(TAUGHT, PARALLEL),
        schedule_vs_sequential=result.median_ratio(TAUGHT, SEQUENTIAL),
        schedule_hazards=taught.dependent + taught.stale_reads,
    )
    claim = figures.schedule_vs_parallel >= 0.9 and figures.schedule_hazards == 0
    phases = " then ".join("{" + ", ".join(phase) + "}" for phase in PHASES)
    if claim:
        summary = "On this workload the learner delivered both."
    elif is_safe(taught):
        summary = (
            "Taught by safe data, `schedule` kept `sequential`'s safety but not `parallel`'s"
            " speed, and no safe order can match `parallel` here: two phases per turn at best"
            " against one, since `parallel`'s speed comes from running the read with its write."
        )
    else:
        summary = "Even taught by safe data, `schedule` ran dependent calls together."
    self_taught = result.tallies[SELF_TAUGHT]
    if result.median_ratio(SELF_TAUGHT, PARALLEL) >= 0.9 and not is_safe(self_taught):
        summary += " Taught by the default path, it kept `parallel`'s speed and its hazards."
    write_section(
        "Learning: learner throughput, plan visibility, schedule mode",
        f"""
(a) One learner process (one thread) ingesting {RECORDS:,} records of {CALLS_PER_RECORD} tool
calls each, for {AGENTS} agents, sent in batches of 100: **{rate:,.0f} records/s** (target
>= 2,000): {"met" if rate >= 2000 else "NOT met"}. The machine's 1-minute load average was
{load_before:.2f} before and {load_after:.2f} after, on {os.cpu_count()} cores (the learner and
this client count in it; other processes may too).

From a run's `RunEnd` to its plan being visible through an agent worker's hot cache, over
{len(delays)} runs: median {statistics.median(delays) * 1000:.0f} ms, **p95 {p95 * 1000:.0f} ms**
(target < 1 s): {"met" if p95 < 1 else "NOT met"}.

(b) **`schedule` against `sequential` and `parallel` when a call depends on another.** Each turn
an agent asks for six 300 ms tool calls, in this order: `lookup_a`, `lookup_b`, `write_note(k)`,
`read_note(k)`, `lookup_c`, `lookup_d` (`benchmarks/agent_calls/dependent_tools.py`). The lookups
are independent. The read depends on the write: the write lands when it ends, the read looks when it
starts and fails when the note is not there yet (a *stale read*). The fastest safe order has two
phases,
{phases}.
The scripted model takes no time, so a turn's tool phase is 1.8 s sequential, 0.6 s in two
phases and 0.3 s all at once. A batch starts {BATCH} agents of {TURNS} turns together as single
agent runs, on 3 workers x 8 threads; {ROUNDS} rounds each run every arm once, in an order rotated
from round to round. Each arm has its own agent id, so no arm's runs teach another arm's plan.

Where the learning data comes from decides the outcome, so `schedule` is measured twice:

- *safe telemetry*: {TELEMETRY_RUNS} records of this agent as another framework ran it,
  respecting the dependency (the two phases one after the other), fed through
  `Client.record_run`. This is the fair source: runs whose overlaps were all safe. Such runs
  exist only where someone, or some system, already knew the dependency.
- *its own `parallel` runs*: the default path. The agent ran {BATCH} runs under `parallel` (the
  default policy) with `plan_mode="observe_only"` (the default), and the learner learned from
  them.

The last arm declares the two phases as `AgentSpec.parallel_groups` (no learning) and runs them
with `ToolPolicy(mode="plan")` and `plan_mode="schedule"`: the fastest safe order, for
reference.

Definitions, counted on the run records the agents leave (the call intervals the learner reads):
two tool calls of one run *ran together* when each started before the other ended. An *unsafe
overlap* is a pair of calls that ran together although their two tools were never observed
running together in the learning data; the yardstick is the safe telemetry, for every arm. A
*dependent pair together* is a `read_note` that ran together with its `write_note`: a real
hazard, the unsafe overlaps that matter. Stale reads are what the read tool reported. Wall
seconds per batch and throughput ratios per round are medians with the range (min-max); counts
are totals over the {ROUNDS} rounds.

{arms_table(result)}

Learned plans (their largest groups): from the telemetry,
{groups_text(result.taught_groups)};
from the `parallel` runs,
{groups_text(result.self_groups)}.

{findings(result)}

**The learner's claim, `parallel`'s speed (>= 0.9x) with `sequential`'s safety (no dependent
pair together, no stale read): {"shown" if claim else "NOT shown"}.** {summary}

Not measured here: `plan` joins consecutive calls only (`workers/agent/plan_use.py`), so the call
order above is its best case; and groups are tool names, not arguments, so telemetry in which a
write and a read of *different* keys overlapped would teach a group that also runs a read with
its own write.
""",
    )
    print(
        f"learning: {rate:.0f} records/s, p95 visibility {p95:.3f} s, schedule "
        f"{figures.schedule_vs_parallel:.2f}x parallel, {figures.schedule_vs_sequential:.2f}x "
        f"sequential, {figures.schedule_hazards} hazards"
    )
    return figures


if __name__ == "__main__":
    sys.exit(0 if main().met else 1)
