"""What one record may cost a learner, and that one record never costs the others of its batch:
the limits of ``orchestrator.models.learner_limits`` and the timestamp rule, on a real Redis."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest
import redis

import learners.ingest
from learners.ingest import ingest_records
from learners.tool_parallelism import observed_cohorts
from orchestrator import Client, InvalidRunError
from orchestrator.cli.input import read_records
from orchestrator.local import LocalRedis
from orchestrator.models import AgentSpec, CallRecord, RunRecord
from orchestrator.models.learner_limits import (
    MAX_CALLS_PER_RECORD,
    MAX_GROUP_CALLS,
    MAX_GROUPS_PER_PLAN,
    MAX_PLAN_BYTES,
)
from orchestrator.plans.cache_store import CachePlanStore
from orchestrator.plans.store import PlanStore
from tests.learning.test_learner_logic import T0, at, record


def stores(server: LocalRedis) -> tuple[PlanStore, CachePlanStore]:
    client = redis.Redis.from_url(server.url)
    return PlanStore(client), CachePlanStore(client)


def overlapping(count: int, agent: str, name: str = "fetch") -> dict[str, Any]:
    """A record of ``count`` calls of ``name`` that all run at once."""
    calls = [(name, index / 1000, 3600.0) for index in range(count)]
    return record(*calls, agent=agent).model_dump(mode="json")


def test_a_record_of_thousands_of_overlapping_calls_leaves_a_small_plan(
    redis_server: LocalRedis,
) -> None:
    plans, cache_plans = stores(redis_server)
    agent = f"crowd-{uuid4().hex[:8]}"
    # 5,000 calls of one tool at once: before the bound, one cohort per call (sizes 2..5,000),
    # 12.5 million names in the plan.
    report = ingest_records([overlapping(5000, agent)], plans, cache_plans)
    assert report.ingested == 1 and report.rejected == []
    plan = plans.get(agent)
    assert plan is not None
    sizes = sorted(len(group.tool_names) for group in plan.parallel_groups)
    assert sizes == list(range(2, MAX_GROUP_CALLS + 1))
    stored = redis.Redis.from_url(redis_server.url).strlen(f"ao:plan:{{{agent}}}")
    assert stored <= MAX_PLAN_BYTES


def test_the_sweep_names_at_most_a_group_per_call_of_bounded_size() -> None:
    # Work per record: the cohorts hold at most MAX_GROUP_CALLS names each, however many of
    # the record's calls overlap.
    many = RunRecord.model_validate(overlapping(1000, "a"))
    cohorts = observed_cohorts(many)
    assert len(cohorts) == MAX_GROUP_CALLS - 1
    assert sum(len(cohort) for cohort in cohorts) <= MAX_GROUP_CALLS**2


def test_a_record_over_the_call_limit_is_set_aside_and_the_others_learned(
    redis_server: LocalRedis,
) -> None:
    plans, cache_plans = stores(redis_server)
    big, small = f"big-{uuid4().hex[:8]}", f"small-{uuid4().hex[:8]}"
    good = record(("a", 0, 2), ("b", 1, 3), agent=small).model_dump(mode="json")
    before, _ = plans.rejected()
    report = ingest_records([overlapping(MAX_CALLS_PER_RECORD + 1, big), good], plans, cache_plans)
    assert report.ingested == 1 and report.changed_agents == [small]
    count, reason = plans.rejected()
    assert count == before + 1
    assert reason == "record 0: calls: 10,001 calls, more than the 10,000 a record may hold"
    assert plans.get(big) is None
    plan = plans.get(small)
    assert plan is not None and plan.records_seen == 1


def distinct_pairs(count: int, agent: str) -> dict[str, Any]:
    """A record of ``count`` pairs of overlapping calls, each pair of tools of its own."""
    calls: list[tuple[str, float, float | None]] = []
    for index in range(count):
        calls += [
            (f"x{index}", 10.0 * index, 10.0 * index + 2),
            (f"y{index}", 10.0 * index + 1, 10.0 * index + 3),
        ]
    return record(*calls, agent=agent).model_dump(mode="json")


def test_a_full_tool_plan_drops_only_the_new_cohorts_and_the_record_is_learned(
    redis_server: LocalRedis,
) -> None:
    plans, cache_plans = stores(redis_server)
    agent = f"wide-{uuid4().hex[:8]}"
    full = distinct_pairs(MAX_GROUPS_PER_PLAN, agent)  # the plan's history fills it
    assert ingest_records([full], plans, cache_plans).rejected == []
    before, _ = plans.rejected()
    # A record with one group the plan knows, one it has no room for, and a model call.
    late = record(("x0", 0, 2), ("y0", 1, 3), ("c", 10, 12), ("d", 11, 13), agent=agent)
    raw = late.model_dump(mode="json")
    raw["calls"].append(model_call(T0, ["s"]))
    report = ingest_records([raw], plans, cache_plans)
    assert report.rejected == [] and report.ingested == 1 and report.dropped_cohorts == 1
    assert plans.rejected()[0] == before
    plan = plans.get(agent)
    assert plan is not None and plan.records_seen == 2
    assert len(plan.parallel_groups) == MAX_GROUPS_PER_PLAN
    assert ["c", "d"] not in [g.tool_names for g in plan.parallel_groups]
    cached = cache_plans.get(agent)
    assert cached is not None
    assert sum(p.total_observations for p in cached.profiles.values()) == 1


def test_many_records_of_a_few_tools_are_all_learned_once_the_plan_is_full(
    redis_server: LocalRedis,
) -> None:
    # The review's case: 3 overlapping tools of 24 per record; 2,024 possible groups.
    plans, cache_plans = stores(redis_server)
    agent = f"many-{uuid4().hex[:8]}"
    before, _ = plans.rejected()
    tools = random.Random(22)
    batch = []
    for _ in range(600):
        names = tools.sample([f"t{number}" for number in range(24)], 3)
        calls = [(name, float(offset), 5.0) for offset, name in enumerate(names)]
        batch.append(record(*calls, agent=agent).model_dump(mode="json"))
    report = ingest_records(batch, plans, cache_plans)
    assert report.rejected == [] and report.ingested == 600 and plans.rejected()[0] == before
    plan = plans.get(agent)
    assert plan is not None and plan.records_seen == 600
    assert len(plan.parallel_groups) == MAX_GROUPS_PER_PLAN and report.dropped_cohorts > 0


def test_a_record_too_wide_for_any_plan_is_set_aside_alone(redis_server: LocalRedis) -> None:
    plans, cache_plans = stores(redis_server)
    agent = f"wider-{uuid4().hex[:8]}"
    first = record(("a", 0, 2), ("b", 1, 3), agent=agent).model_dump(mode="json")
    wide = distinct_pairs(MAX_GROUPS_PER_PLAN + 1, agent)  # too many groups on its own
    report = ingest_records([first, wide], plans, cache_plans)
    assert report.rejected == [
        "record 1: its cohorts would give the tool plan 257 groups, more than 256"
    ]
    plan = plans.get(agent)
    assert plan is not None and plan.records_seen == 1
    assert [g.tool_names for g in plan.parallel_groups] == [["a", "b"]]


def test_a_record_that_would_make_the_plan_too_large_is_set_aside(
    redis_server: LocalRedis,
) -> None:
    plans, cache_plans = stores(redis_server)
    agent = f"long-{uuid4().hex[:8]}"
    # Few groups, long names: under the group limit, over the plan's bytes.
    long = record(("a" * 40_000, 0, 2), ("b" * 40_000, 1, 3), ("c" * 40_000, 1.5, 3), agent=agent)
    report = ingest_records([long.model_dump(mode="json")], plans, cache_plans)
    (reason,) = report.rejected
    assert reason.startswith("record 0: its cohorts would make the tool plan ")
    assert reason.endswith(f"bytes, more than {MAX_PLAN_BYTES:,}")
    assert plans.get(agent) is None


def model_call(start: datetime, hashes: list[str]) -> dict[str, Any]:
    prompt = [{"kind": "system", "hash": h, "tokens": 100} for h in hashes]
    return {
        "kind": "model",
        "name": "claude-sonnet-4-5",
        "started_at": start.isoformat(),
        "ended_at": (start + timedelta(seconds=1)).isoformat(),
        "surface": "anthropic.messages",
        "prompt": prompt,
    }


def test_naive_times_are_taken_as_utc_for_every_learner(redis_server: LocalRedis) -> None:
    plans, cache_plans = stores(redis_server)
    mixed, good = f"mixed-{uuid4().hex[:8]}", f"good-{uuid4().hex[:8]}"
    naive = record(("a", 0, 2), agent=mixed).model_dump(mode="json")
    # One call without a zone beside aware ones, in each learner's part of the record.
    naive["calls"].append(
        {"kind": "tool", "name": "b", "started_at": "2026-01-01T00:00:01", "ended_at": at(3)}
    )
    naive["calls"] += [model_call(T0, ["s"]), model_call(T0.replace(tzinfo=None), ["s"])]
    aware = record(("c", 0, 2), ("d", 1, 3), agent=good).model_dump(mode="json")
    aware["calls"].append(model_call(T0, ["s"]))
    report = ingest_records([naive, aware], plans, cache_plans)
    assert report.rejected == [] and report.ingested == 2
    learned = plans.get(mixed)
    assert learned is not None and [g.tool_names for g in learned.parallel_groups] == [["a", "b"]]
    for agent, observations in ((mixed, 2), (good, 1)):
        cached = cache_plans.get(agent)
        assert cached is not None
        assert sum(p.total_observations for p in cached.profiles.values()) == observations
    checked = RunRecord.model_validate(naive)
    assert all(call.started_at.tzinfo is UTC for call in checked.calls)


@pytest.mark.parametrize(
    "when",
    [
        "0001-01-01T00:00:00",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "1969-12-31T23:59:59Z",
    ],
)
def test_out_of_range_times_are_refused_and_the_batch_learned(
    redis_server: LocalRedis, when: str
) -> None:
    plans, cache_plans = stores(redis_server)
    odd, good = f"odd-{uuid4().hex[:8]}", f"good-{uuid4().hex[:8]}"
    strange = record(("a", 0, 2), ("b", 1, 3), agent=odd).model_dump(mode="json")
    strange["calls"].append(model_call(T0, ["s"]) | {"started_at": when})
    report = ingest_records(
        [strange, record(("a", 0, 2), ("b", 1, 3), agent=good).model_dump(mode="json")],
        plans,
        cache_plans,
    )
    (reason,) = report.rejected
    assert reason.startswith("record 0: calls.2.started_at: Value error, timestamp out of range")
    assert plans.get(odd) is None and cache_plans.get(odd) is None
    assert plans.get(good) is not None


def test_a_learner_failing_on_one_record_costs_only_that_record(
    redis_server: LocalRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans, cache_plans = stores(redis_server)
    bad, good = f"bad-{uuid4().hex[:8]}", f"good-{uuid4().hex[:8]}"
    learn = learners.ingest.observed_cohorts

    def failing_on_bad(run: RunRecord) -> list[list[str]]:
        if run.agent_id == bad:
            raise RecursionError("a learner bug")
        return learn(run)

    monkeypatch.setattr(learners.ingest, "observed_cohorts", failing_on_bad)
    batch = [
        record(("a", 0, 2), ("b", 1, 3), agent=agent).model_dump(mode="json")
        for agent in (bad, good)
    ]
    seen_before = plans.get(bad)
    report = ingest_records(batch, plans, cache_plans)
    assert report.rejected == ["record 0: a learner failed on it (RecursionError)"]
    assert plans.get(bad) is seen_before is None
    plan = plans.get(good)
    assert plan is not None and plan.records_seen == 1


def test_calls_of_a_record_come_back_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    call = CallRecord(kind="tool", name="a", started_at=datetime(2026, 1, 1, 1, tzinfo=paris))
    assert call.started_at == datetime(2026, 1, 1, tzinfo=UTC) and call.started_at.tzinfo is UTC


@pytest.mark.parametrize("agent_id", ["}x", "a{b", "{a}"])
def test_agent_ids_holding_a_hash_tag_brace_are_refused(agent_id: str) -> None:
    with pytest.raises(ValueError, match=re.escape("without ':', '{', '}' or control characters")):
        AgentSpec(name="a", agent_id=agent_id)
    with pytest.raises(ValueError, match="String should match pattern"):
        RunRecord(run_id="r", agent_name="a", agent_id=agent_id, started_at=T0)


def test_record_run_and_learn_refuse_a_record_over_the_call_limit(
    redis_server: LocalRedis,
) -> None:
    big = overlapping(MAX_CALLS_PER_RECORD + 1, "big")
    why = "calls: 10,001 calls, more than the 10,000 a record may hold"
    with pytest.raises(InvalidRunError, match=f"over the learners' limits: {why}"):
        Client(redis_url=redis_server.url).record_run(big)
    records, skipped = read_records(json.dumps(big))
    assert records == [] and skipped == [f"line 1: over the learners' limits ({why}), skipped"]
