"""A tool workload where some calls depend on others, and how to count what ran together.

Each turn an agent asks for six 300 ms calls, in this order: ``lookup_a``, ``lookup_b``,
``write_note(k)``, ``read_note(k)``, ``lookup_c``, ``lookup_d``. The lookups are independent; the
read must see the write of the same key (``benchmarks.agent_calls.bench_tools``: the write lands
when it ends, the read looks when it starts and fails when nothing is there). The safe schedule has
two phases, ``{lookup_a, lookup_b, write_note}`` then ``{read_note, lookup_c, lookup_d}``.

Overlaps are counted on the run records the agents leave (the intervals the learner reads):
two tool calls of one run overlap when each started before the other ended.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import combinations
from uuid import uuid4

from orchestrator import AgentSpec, Client, ModelConfig, ToolPolicy
from orchestrator.models import CallRecord, RunRecord
from orchestrator.plans import PlanMode

MS = 300
PHASES = [["lookup_a", "lookup_b", "write_note"], ["read_note", "lookup_c", "lookup_d"]]
TOOLS = [name for phase in PHASES for name in phase]
DEPENDENT = ("read_note", "write_note")  # sorted, as pairs are


def notes_agent(
    agent_id: str, mode: str, plan_mode: PlanMode, turns: int, tag: str, explicit: bool = False
) -> AgentSpec:
    """An agent making ``turns`` turns of the six calls; its note keys are unique to ``tag``,
    so concurrent agents sharing a worker's note pad never see each other's notes. With
    ``explicit``, the user declares the two safe phases as its ``parallel_groups``."""
    script: list[dict[str, object]] = []
    for turn in range(turns):
        key = f"{tag}-{turn}"
        arguments: dict[str, dict[str, object]] = {
            "write_note": {"key": key, "text": f"found in turn {turn}", "ms": MS},
            "read_note": {"key": key, "ms": MS},
        }
        calls = [{"name": name, "arguments": arguments.get(name, {"ms": MS})} for name in TOOLS]
        script.append({"tool_calls": calls})
    script.append({"text": "done"})
    return AgentSpec(
        name="notes",
        agent_id=agent_id,
        model=ModelConfig(provider="scripted", options={"script": script}),
        tools=TOOLS,
        tool_policy=ToolPolicy(mode=mode),
        plan_mode=plan_mode,
        parallel_groups=PHASES if explicit else [],
    )


def telemetry_record(agent_id: str, turns: int, index: int) -> RunRecord:
    """A run of the same agent as another framework reports it, one that respected the
    dependency: each turn's two phases one after the other, the calls of a phase started a few
    milliseconds apart, a short gap between phases."""
    begun = t = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=index)
    calls: list[CallRecord] = []
    for _ in range(turns):
        for phase in PHASES:
            for offset, name in enumerate(phase):
                started = t + timedelta(milliseconds=3 * offset)
                ended = started + timedelta(milliseconds=MS)
                calls.append(CallRecord(kind="tool", name=name, started_at=started, ended_at=ended))
            t += timedelta(milliseconds=MS + 3 * len(phase) + 5)
    return RunRecord(
        run_id=uuid4().hex,
        agent_name="notes",
        agent_id=agent_id,
        started_at=begun,
        ended_at=t,
        calls=calls,
    )


def overlapping_pairs(record: RunRecord) -> list[tuple[str, str]]:
    """The name pairs (sorted) of the record's tool calls that overlapped, one per call pair.
    Calls that only touch (one ends as the other starts) did not overlap."""
    calls = [
        (call.started_at, call.ended_at, call.name)
        for call in record.calls
        if call.kind == "tool" and call.ended_at is not None
    ]
    pairs: list[tuple[str, str]] = []
    for (a_start, a_end, a_name), (b_start, b_end, b_name) in combinations(calls, 2):
        if a_start < b_end and b_start < a_end:
            first, second = sorted((a_name, b_name))
            pairs.append((first, second))
    return pairs


def observed_pairs(records: list[RunRecord]) -> set[tuple[str, str]]:
    """Every name pair that ran together in ``records``: what the learning data shows."""
    return {pair for record in records for pair in overlapping_pairs(record)}


@dataclass
class Tally:
    """How the tool calls of some agent runs overlapped."""

    overlaps: int
    """Pairs of calls that ran at the same time."""
    unobserved: int
    """Of those, pairs whose tools never ran together in the reference learning data."""
    dependent: int
    """Of those, a read_note and the write_note it depends on."""
    stale_reads: int
    """read_note calls that failed: they began before their write landed."""
    reads: int


def tally(records: list[RunRecord], reference: set[tuple[str, str]]) -> Tally:
    """Count the overlaps of ``records`` against the pairs observed in ``reference``."""
    pairs = [pair for record in records for pair in overlapping_pairs(record)]
    reads = [c for r in records for c in r.calls if c.kind == "tool" and c.name == "read_note"]
    return Tally(
        overlaps=len(pairs),
        unobserved=sum(pair not in reference for pair in pairs),
        dependent=sum(pair == DEPENDENT for pair in pairs),
        stale_reads=sum(call.status != "ok" for call in reads),
        reads=len(reads),
    )


def run_batch(
    client: Client,
    agent_id: str,
    mode: str,
    plan_mode: PlanMode,
    agents: int,
    turns: int,
    explicit: bool = False,
) -> tuple[float, list[RunRecord]]:
    """Start ``agents`` single agent runs at once; the wall seconds until the last one ended,
    and their records."""
    tag = uuid4().hex[:12]
    specs = [
        notes_agent(agent_id, mode, plan_mode, turns, f"{tag}-{i}", explicit) for i in range(agents)
    ]
    started = time.perf_counter()
    handles = [client.run_agent(spec, "go") for spec in specs]
    results = [handle.result(120) for handle in handles]
    seconds = time.perf_counter() - started
    records: list[RunRecord] = []
    for result in results:
        # A failed tool call is a result the model reads; the agent itself must succeed.
        assert result.output.outcome == "ok" and result.record is not None, result.output.error
        records.append(result.record)
    return seconds, records
