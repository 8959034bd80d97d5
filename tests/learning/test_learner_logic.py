"""The tool-parallelism learner's logic, and plan storage, on tricky inputs."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest
import redis

from learners.ingest import ingest_records
from learners.tool_parallelism import merge_cohorts, observed_cohorts
from orchestrator.local import LocalRedis
from orchestrator.models import AgentSpec, CallRecord, RunRecord, ToolCall
from orchestrator.plans import ExecutionPlan, ParallelGroup, group_id
from orchestrator.plans.store import PlanStore
from workers.agent import plan_cache
from workers.agent.plan_cache import PlanCache
from workers.agent.plan_use import effective_parallel_groups, plan_batches

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def record(*calls: tuple[str, float, float | None], agent: str = "agent") -> RunRecord:
    return RunRecord(
        run_id=uuid4().hex,
        agent_name=agent,
        agent_id=agent,
        started_at=T0,
        calls=[
            CallRecord(
                kind="tool", name=name, started_at=at(start), ended_at=at(end) if end else None
            )
            for name, start, end in calls
        ],
    )


def test_touching_intervals_do_not_overlap() -> None:
    assert observed_cohorts(record(("a", 0, 1), ("b", 1, 2))) == []


def test_a_call_inside_another_overlaps_it_alone() -> None:
    timeline = record(("a", 0, 10), ("b", 2, 3), ("c", 4, 5))
    assert observed_cohorts(timeline) == [["a", "b"], ["a", "c"]]


def test_a_chain_gives_two_cohorts_when_its_ends_never_meet() -> None:
    assert observed_cohorts(record(("a", 0, 2), ("b", 1, 4), ("c", 3, 5))) == [
        ["a", "b"],
        ["b", "c"],
    ]


def test_calls_of_one_tool_overlapping_form_a_cohort_of_that_name_twice() -> None:
    assert observed_cohorts(record(("a", 0, 2), ("a", 1, 3))) == [["a", "a"]]


def test_calls_without_an_end_are_ignored() -> None:
    assert observed_cohorts(record(("a", 0, None), ("b", 1, 2))) == []


def test_cohorts_grow_while_calls_pile_up() -> None:
    assert observed_cohorts(record(("a", 0, 5), ("c", 2, 5), ("b", 1, 5))) == [
        ["a", "b"],
        ["a", "b", "c"],
    ]


def test_model_calls_do_not_count() -> None:
    run = record(("a", 0, 2))
    run.calls.append(CallRecord(kind="model", name="m", started_at=at(1), ended_at=at(3)))
    assert observed_cohorts(run) == []


def test_group_ids_are_stable_and_ignore_order() -> None:
    expected = "fanout:" + hashlib.sha256(b"fetch|search").hexdigest()[:12]
    assert group_id(["search", "fetch"]) == group_id(["fetch", "search"]) == expected


def test_merging_is_idempotent_with_one_hint_per_tool_and_group() -> None:
    plan = ExecutionPlan.empty("agent")
    once = merge_cohorts(plan, [["a", "a"], ["a", "b"]], "r1")
    twice = merge_cohorts(once, [["a", "b"], ["a", "a"]], "r2")
    assert once.parallel_groups == twice.parallel_groups
    assert once.metadata_template.parallel_hints == twice.metadata_template.parallel_hints
    hints = [(h.tool_name, h.group_id) for h in once.metadata_template.parallel_hints]
    assert sorted(hints) == sorted(
        [("a", group_id(["a", "a"])), ("a", group_id(["a", "b"])), ("b", group_id(["a", "b"]))]
    )
    assert twice.metadata_template.run_id == "r2" and twice.metadata_template.agent_id == "agent"


def test_plan_batches_run_one_group_together_and_the_rest_alone() -> None:
    def calls(*names: str) -> list[ToolCall]:
        return [ToolCall(id=str(i), name=n) for i, n in enumerate(names)]

    groups = [["a", "b"]]
    assert plan_batches(calls("a", "b", "c"), groups) == [[0, 1], [2]]
    assert plan_batches(calls("c", "b", "a"), groups) == [[0], [1, 2]]
    assert plan_batches(calls("a", "a"), groups) == [[0], [1]]  # a twice was never seen
    assert plan_batches(calls("a", "a", "b"), [["a", "a", "b"]]) == [[0, 1, 2]]


def test_explicit_groups_win_over_learned_ones_for_their_tools() -> None:
    plan = ExecutionPlan.empty("agent")
    plan.parallel_groups = [ParallelGroup.of(["a", "c"]), ParallelGroup.of(["d", "e"])]
    spec = AgentSpec(name="agent", parallel_groups=[["b", "a"]])
    assert effective_parallel_groups(spec, plan) == [["a", "b"], ["d", "e"]]


def test_malformed_records_are_rejected_counted_and_leave_plans_alone(
    redis_server: LocalRedis,
) -> None:
    plans = PlanStore(redis.Redis.from_url(redis_server.url))
    agent = f"agent-{uuid4().hex}"
    good: Any = record(("a", 0, 2), ("b", 1, 3), agent=agent).model_dump(mode="json")
    before, _ = plans.rejected()
    report = ingest_records([{"run_id": 5}, good, "not a record"], plans)
    assert report.ingested == 1 and len(report.rejected) == 2
    count, reason = plans.rejected()
    assert count == before + 2 and reason.startswith("record 2:")
    plan = plans.get(agent)
    assert plan is not None and plan.version == 1 and plan.records_seen == 1
    assert [g.tool_names for g in plan.parallel_groups] == [["a", "b"]]


def test_a_run_without_overlap_leaves_the_plan_untouched(redis_server: LocalRedis) -> None:
    plans = PlanStore(redis.Redis.from_url(redis_server.url))
    agent = f"agent-{uuid4().hex}"
    ingest_records([record(("a", 0, 2), ("b", 1, 3), agent=agent).model_dump(mode="json")], plans)
    ingest_records([record(("c", 0, 1), ("d", 1, 2), agent=agent).model_dump(mode="json")], plans)
    plan = plans.get(agent)
    assert plan is not None and plan.version == 1 and plan.records_seen == 2


class CountingPlans(PlanStore):
    """A plan store that counts its reads."""

    reads = 0

    def version(self, agent_id: str) -> int | None:
        self.reads += 1
        return super().version(agent_id)

    def get(self, agent_id: str) -> ExecutionPlan | None:
        self.reads += 1
        return super().get(agent_id)


def test_the_hot_cache_sees_a_new_version_within_a_second_without_a_read_per_call(
    redis_server: LocalRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(plan_cache, "time", SimpleNamespace(monotonic=lambda: now[0]))
    plans = CountingPlans(redis.Redis.from_url(redis_server.url))
    agent = f"agent-{uuid4().hex}"
    cache = PlanCache(plans)
    assert cache.get(agent) is None
    reads = plans.reads
    for _ in range(1000):
        cache.get(agent)
    assert plans.reads == reads  # within max_age, no Redis round trip at all
    ingest_records([record(("a", 0, 2), ("b", 1, 3), agent=agent).model_dump(mode="json")], plans)
    now[0] += 0.4
    assert cache.get(agent) is None and plans.reads == reads  # still trusted: not checked
    now[0] += 0.2  # past max_age (0.5 s) since the last check
    seen = cache.get(agent)
    assert seen is not None and seen.version == 1 and plans.reads > reads
