"""A plan's version only grows: a reset moves it on, so a worker's hot cache, which trusts an
entry whose version matches, never keeps a plan that was reset; and a reset racing a batch of
records never loses the batch."""

from __future__ import annotations

from uuid import uuid4

import pytest
import redis

from learners.ingest import ingest_records
from learners.tool_parallelism import merge_cohorts
from orchestrator.local import LocalRedis
from orchestrator.plans import ExecutionPlan
from orchestrator.plans.store import PlanStore
from tests.learning.test_learner_logic import record
from workers.agent.plan_cache import PlanCache


@pytest.fixture
def plans(module_redis: LocalRedis) -> PlanStore:
    return PlanStore(redis.Redis.from_url(module_redis.url))


def groups(plan: ExecutionPlan | None) -> list[list[str]]:
    return [group.tool_names for group in plan.parallel_groups] if plan else []


def learn(plans: PlanStore, agent: str, cohort: list[str]) -> ExecutionPlan | None:
    return plans.update(agent, lambda plan: merge_cohorts(plan, [cohort], "run"))


def test_a_worker_sees_a_plan_learned_after_a_reset(plans: PlanStore) -> None:
    agent = f"agent-{uuid4().hex[:8]}"
    cache = PlanCache(plans, max_age_s=0)  # checks the version at every look
    first = learn(plans, agent, ["fetch", "search"])
    assert first is not None and first.version == 1
    assert groups(cache.get(agent)) == [["fetch", "search"]]
    assert plans.reset(agent)
    assert cache.get(agent) is None
    again = learn(plans, agent, ["render", "upload"])
    assert again is not None and again.version > 1, "a version number is never reused"
    assert groups(cache.get(agent)) == [["render", "upload"]]


def test_a_reset_a_worker_never_looked_between_is_still_seen(plans: PlanStore) -> None:
    agent = f"agent-{uuid4().hex[:8]}"
    cache = PlanCache(plans, max_age_s=0)
    learn(plans, agent, ["fetch", "search"])
    assert groups(cache.get(agent)) == [["fetch", "search"]]
    # Reset and relearned while the worker did not look the agent up.
    plans.reset(agent)
    learn(plans, agent, ["render", "upload"])
    assert groups(cache.get(agent)) == [["render", "upload"]]
    assert plans.version(agent) == 3


class ResetAfterRead(PlanStore):
    """A plan store where an operator's reset lands right after any batch read of plans."""

    def get_many(self, agent_ids: list[str]) -> dict[str, ExecutionPlan | None]:
        read = super().get_many(agent_ids)
        for agent_id in agent_ids:
            self.reset(agent_id)
        return read


def test_a_reset_racing_a_batch_never_loses_the_batch(module_redis: LocalRedis) -> None:
    plans = ResetAfterRead(redis.Redis.from_url(module_redis.url))
    agent = f"agent-{uuid4().hex[:8]}"
    learn(plans, agent, ["a", "b"])
    overlap = record(("a", 0, 2), ("b", 1, 3), agent=agent).model_dump(mode="json")
    ingest_records([overlap], plans)
    assert groups(plans.get(agent)) == [["a", "b"]]
