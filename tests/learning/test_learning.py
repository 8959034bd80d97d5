"""Learning end to end: learner workers, plans in Redis, and later runs that use them."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from learners.tool_parallelism import observed_cohorts
from orchestrator import (
    AgentSpec,
    Client,
    ExecutionPlan,
    InvalidRunError,
    ModelConfig,
    ToolPolicy,
)
from orchestrator.local import LocalRedis, LocalWorker, wait_for_workers
from orchestrator.models import CallRecord
from orchestrator.models.cache_records import PromptBlock
from orchestrator.plans.cache_plans import CachePlan
from orchestrator.plans.keys import learner_deliveries_key
from orchestrator.state.events import ToolCallEnd, ToolCallStart
from tests.conftest import FAST_TIMINGS
from tests.helpers import local_endpoints, providers, run_cli, wait_for
from tests.learning.test_learner_logic import record
from tests.providers.test_providers import CHAT_ANSWER
from tests.servers.fake_api import FakeAPI
from workers.agent.loop import run_agent
from workers.execution.records import INGEST_TASK


def wait_for_plan(
    client: Client, agent_id: str, check: Any, timeout_s: float = 20
) -> ExecutionPlan:

    def plan() -> ExecutionPlan | None:
        found = client.plan(agent_id)
        return found if found is not None and check(found) else None

    return wait_for(plan, f"the plan of {agent_id} got there", timeout_s)


def test_four_learner_processes_lose_no_update(tmp_path: Path) -> None:
    server = LocalRedis()
    env = {"ORCHESTRATOR_REDIS_URL": server.url, **FAST_TIMINGS}
    learners = [
        LocalWorker(f"learner{i}", env, queues=["learner"], concurrency=1) for i in range(4)
    ]
    try:
        import redis

        wait_for_workers(redis.Redis.from_url(server.url), [w.hostname for w in learners])
        client = Client(redis_url=server.url)
        rng = random.Random(11)
        tools = [f"t{i}" for i in range(8)]
        expected: set[tuple[str, ...]] = set()
        for _ in range(1000):
            a, b = rng.sample(tools, 2)
            start = rng.random()
            run = record((a, start, start + 1), (b, start + 0.5, start + 2), agent="crowd")
            expected.update(tuple(c) for c in observed_cohorts(run))
            # A model call with its prompt's shape, for the cache learner.
            block = PromptBlock(kind="system", hash=f"h{rng.randrange(3)}", tokens=10)
            run.calls.append(
                CallRecord(
                    kind="model",
                    name="m",
                    started_at=run.started_at,
                    ended_at=run.started_at,
                    surface="anthropic.messages",
                    prompt=[block],
                )
            )
            client.send_records([run.model_dump(mode="json")])  # one task each: they race
        plan = wait_for_plan(client, "crowd", lambda p: p.records_seen == 1000, timeout_s=60)
        # Every observation reached the cache plan too: each learner merged into the others'.

        def all_observed() -> CachePlan | None:
            cached = client.cache_plan("crowd")
            seen = sum(p.total_observations for p in cached.profiles.values()) if cached else 0
            return cached if seen >= 1000 else None

        cached = wait_for(all_observed, "the cache plan took 1000 observations", 60)
        assert sum(p.total_observations for p in cached.profiles.values()) == 1000
        assert {tuple(g.tool_names) for g in plan.parallel_groups} == expected
        hinted = {(h.tool_name, h.group_id) for h in plan.metadata_template.parallel_hints}
        assert hinted == {(n, g.group_id) for g in plan.parallel_groups for n in g.tool_names}
    finally:
        for worker in learners:
            worker.stop()
        server.stop()


def fanout_agent(agent_id: str, script: list[dict[str, Any]], **spec: Any) -> AgentSpec:
    return AgentSpec(
        name="planner",
        agent_id=agent_id,
        model=ModelConfig(provider="scripted", options={"script": script}),
        tools=["echo", "tracked", "add"],
        **spec,
    )


def test_learned_groups_and_only_they_run_together_in_schedule_mode(client: Client) -> None:
    agent_id = f"planner-{uuid4().hex[:8]}"
    together = {
        "tool_calls": [
            {"name": "echo", "arguments": {"text": "x", "delay_ms": 250}},
            {"name": "tracked", "arguments": {"key": "learn", "delay_ms": 250}},
        ]
    }
    alone = {"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}
    learning = fanout_agent(agent_id, [together, alone, {"text": "done"}])
    client.run_agent(learning, "learn").result(30)  # parallel policy, observe only
    plan = wait_for_plan(client, agent_id, lambda p: bool(p.parallel_groups))
    assert [g.tool_names for g in plan.parallel_groups] == [["echo", "tracked"]]

    mixed = {
        "tool_calls": [
            {"name": "echo", "arguments": {"text": "x", "delay_ms": 250}},
            {"name": "tracked", "arguments": {"key": "scheduled", "delay_ms": 250}},
            {"name": "echo", "arguments": {"text": "y", "delay_ms": 250}},
        ]
    }
    scheduled = fanout_agent(
        agent_id,
        [mixed, {"text": "done"}],
        plan_mode="schedule",
        tool_policy=ToolPolicy(mode="plan"),
    )
    handle = client.run_agent(scheduled, "use the plan")
    handle.result(30)
    events = list(handle.events(follow=False))
    start = {e.call_id: e.ts for e in events if isinstance(e, ToolCallStart)}
    end = {e.call_id: e.ts for e in events if isinstance(e, ToolCallEnd)}
    first, second, third = "call_0_0", "call_0_1", "call_0_2"
    assert start[second] < end[first] and start[first] < end[second]  # the learned group overlaps
    assert start[third] >= max(end[first], end[second])  # echo again: not in a group with them


def test_observe_only_learns_without_changing_how_tools_run(client: Client) -> None:
    agent_id = f"observer-{uuid4().hex[:8]}"
    turn = {
        "tool_calls": [
            {"name": "echo", "arguments": {"text": "x", "delay_ms": 200}},
            {"name": "tracked", "arguments": {"key": "observe", "delay_ms": 200}},
        ]
    }
    spec = fanout_agent(agent_id, [turn, {"text": "done"}], tool_policy=ToolPolicy(mode="plan"))
    handle = client.run_agent(spec, "go")
    handle.result(30)
    events = list(handle.events(follow=False))
    start = {e.call_id: e.ts for e in events if isinstance(e, ToolCallStart)}
    end = {e.call_id: e.ts for e in events if isinstance(e, ToolCallEnd)}
    assert start["call_0_1"] >= end["call_0_0"]  # no plan applied: one at a time


def test_inject_hints_tells_the_model_and_sets_the_providers_parallel_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    api = FakeAPI()
    monkeypatch.setenv("ORCHESTRATOR_ENDPOINTS", local_endpoints(api.port))
    api.reply(CHAT_ANSWER)
    try:
        spec = AgentSpec(
            name="hinted",
            instructions="Be quick.",
            model=ModelConfig(provider="openai", model="gpt-test", endpoint="test-openai"),
            plan_mode="inject_hints",
        )
        run_agent(
            spec, "q", run_id="r", parallel_groups=[["fetch", "search"]], provider_for=providers()
        )
    finally:
        api.close()
    body = api.requests[0][2]
    assert body["parallel_tool_calls"] is True
    system = body["messages"][0]["content"]
    assert system.startswith("Be quick.") and "fetch, search" in system


def test_record_run_refuses_an_invalid_record(client: Client) -> None:
    with pytest.raises(InvalidRunError, match="invalid run record"):
        client.record_run({"run_id": "r"})


def test_the_record_a_learner_died_on_is_set_aside_alone_when_delivered_again(
    client: Client,
) -> None:
    agents = [f"redelivered-{uuid4().hex[:8]}" for _ in range(3)]
    batch = [record(("a", 0, 2), ("b", 1, 3), agent=a).model_dump(mode="json") for a in agents]
    task_id = uuid4().hex
    # What a learner killed on record 1 leaves behind: the batch started twice, the second
    # time a record at a time, record 0 done.
    client.redis.hset(learner_deliveries_key(task_id), mapping={"starts": 2, "done": 1})
    before, _ = client.plans.rejected()
    client._celery.send_task(INGEST_TASK, args=(batch,), queue="learner", task_id=task_id)
    wait_for_plan(client, agents[2], lambda p: bool(p.parallel_groups))  # learned after 0, 1
    assert client.plans.rejected() == (
        before + 1,
        "record 1: its learner died on it (delivered 3 times)",
    )
    assert client.plan(agents[1]) is None  # set aside
    assert client.plan(agents[0]) is None  # done before: not learned again
    # Marked finished, not deleted: a delivery after this one (killed before its ack) learns
    # nothing; the mark lives past the broker's visibility timeout. The learner marks it once
    # the last record's plan is written, so the plan above can be seen before the mark.
    wait_for(
        lambda: client.redis.hget(learner_deliveries_key(task_id), "finished") == b"1",
        "the delivery marked finished",
    )
    assert client.redis.ttl(learner_deliveries_key(task_id)) > client.settings.visibility_timeout_s


def test_learn_cli_feeds_records_counts_rejects_then_plans_show_and_reset(
    client: Client, worker_env: dict[str, str]
) -> None:
    agent = f"cli-{uuid4().hex[:8]}"
    good = record(("fetch", 0, 2), ("search", 1, 3), agent=agent).model_dump_json()
    malformed = json.dumps({"run_id": "r", "calls": "not a list"})
    done = run_cli("learn", "-", env=worker_env, stdin="\n".join([good, malformed, "{not json"]))
    # The CLI checks each record as the learners would, so its count is what they take.
    assert done.returncode == 1 and "line 3: not JSON" in done.stderr
    assert "line 2: not a run record (agent_name: Field required;" in done.stderr
    assert "sent 1 valid record to the learners; skipped 2 lines" in done.stdout
    wait_for_plan(client, agent, lambda p: p.records_seen == 1)

    shown = run_cli("plans", "show", agent, env=worker_env)
    assert "version 1, 1 records seen" in " ".join(shown.stdout.split())
    assert "fetch, search" in shown.stdout
    as_json = json.loads(run_cli("plans", "show", agent, "--output", "json", env=worker_env).stdout)
    assert as_json["parallel_groups"][0]["tool_names"] == ["fetch", "search"]
    assert "reset the plan" in run_cli("plans", "reset", agent, env=worker_env).stdout
    assert client.plan(agent) is None
    assert run_cli("plans", "show", agent, env=worker_env).returncode == 1
