"""RabbitMQ as the broker (run state and results stay in Redis): the core cases, and a worker
SIGKILLed mid-run whose members are taken over as soon as RabbitMQ delivers them again.

Every test here uses a private RabbitMQ node (``tests/deploy/rabbitmq.py``), whatever
``ORCHESTRATOR_TEST_BROKER`` says; they are skipped, saying why, where RabbitMQ is not
installed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator import AgentSpec, Client, ModelConfig, ToolPolicy
from orchestrator.config.settings import Settings
from orchestrator.local import LocalRedis
from orchestrator.state.events import AgentEnd, AgentStart, ToolCallEnd, ToolCallStart
from orchestrator.state.keys import RunKeys
from tests.conftest import FAST_TIMINGS
from tests.deploy.rabbitmq import LocalRabbitMQ
from tests.helpers import items, scripted, start_workers, wait_for
from tests.runs.test_map_reduce import max_overlap


def rabbit_env(node: LocalRabbitMQ, redis_url: str, **extra: str) -> dict[str, str]:
    """Worker environment: run state in ``redis_url``, messages through a fresh vhost."""
    return {
        **FAST_TIMINGS,
        "ORCHESTRATOR_REDIS_URL": redis_url,
        "ORCHESTRATOR_BROKER_URL": node.vhost_url(),
        **extra,
    }


def client_for(env: dict[str, str]) -> Client:
    """A client sending to the same broker as the workers of ``env``."""
    return Client(
        settings=Settings(
            redis_url=env["ORCHESTRATOR_REDIS_URL"], broker_url=env["ORCHESTRATOR_BROKER_URL"]
        )
    )


@pytest.fixture(scope="module")
def rabbit(
    rabbitmq_node: LocalRabbitMQ, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Client]:
    """Three workers on RabbitMQ and a Redis of their own, shared by the core cases."""
    server = LocalRedis()
    env = rabbit_env(rabbitmq_node, server.url)
    workers = start_workers(env, ["rq1", "rq2", "rq3"], tmp_path_factory.mktemp("rabbit-logs"))
    try:
        yield client_for(env)
    finally:
        for worker in workers:
            worker.stop()
        server.stop()


def test_the_workers_take_their_messages_from_rabbitmq(rabbit: Client) -> None:
    assert rabbit._celery.conf.broker_url.startswith("amqp://")
    assert rabbit.map_reduce("Hi", items(2), scripted("m"), scripted("r"), 2).result(30)


def test_map_reduce_keeps_item_order_the_cap_and_one_reducer(rabbit: Client) -> None:
    mapper = scripted("mapper", latency_ms=150, jitter_ms=60, seed=1)
    handle = rabbit.map_reduce("Cap", items(24), mapper, scripted("reducer"), 4)
    result = handle.result(60)
    assert [o.name for o in result.map_outputs] == [f"mapper_{i}" for i in range(24)]
    assert all(o.outcome == "ok" for o in result.map_outputs)
    intervals = [(o.started_at, o.ended_at) for o in result.map_outputs]
    assert max_overlap(intervals) == 4  # type: ignore[arg-type]  # the cap, across workers
    starts = Counter(e.index for e in handle.events(follow=False) if isinstance(e, AgentStart))
    assert starts[None] == 1  # the chord fired its body once: one reducer
    assert result.reducer_output is not None and result.reducer_output.outcome == "ok"
    workers = {e.worker for e in handle.events(follow=False) if isinstance(e, AgentStart)}
    assert len(workers) > 1, "the members spread over the workers"


def test_branches_pick_the_first_successful_config(rabbit: Client) -> None:
    configs = [
        scripted("b", fail_on="Plan").model_copy(update={"config_id": "broken"}),
        scripted("b", latency_ms=300).model_copy(update={"config_id": "slow"}),
        scripted("b").model_copy(update={"config_id": "fast"}),
    ]
    result = rabbit.parallel_branches(configs, prompt="Plan it.", strategy="pick_first").result(30)
    assert [o.output.outcome for o in result.outcomes] == ["error", "ok", "ok"]
    assert result.selected_index == 1


def test_tool_calls_fan_out_and_come_back_in_call_order(rabbit: Client) -> None:
    turn = {
        "tool_calls": [
            {"name": "echo", "arguments": {"text": "slow", "delay_ms": 400}},
            {"name": "echo", "arguments": {"text": "fast", "delay_ms": 0}},
        ]
    }
    spec = AgentSpec(
        name="toolsmith",
        model=ModelConfig(provider="scripted", options={"script": [turn, {"text": "done"}]}),
        tools=["echo"],
        tool_policy=ToolPolicy(),
    )
    handle = rabbit.run_agent(spec, "go")
    result = handle.result(30)
    assert [m.content for m in result.context if m.role == "tool"] == ["slow", "fast"]
    order = [
        type(e) for e in handle.events(follow=False) if isinstance(e, ToolCallStart | ToolCallEnd)
    ]
    assert order == [ToolCallStart] * 2 + [ToolCallEnd] * 2  # side by side


def test_a_cancel_stops_running_and_queued_members(rabbit: Client) -> None:
    mapper = scripted("mapper", latency_ms=3_600_000)  # an hour each
    handle = rabbit.map_reduce("Cancel me", items(12), mapper, scripted("reducer"), 3)
    starts = 0
    for event in handle.events():
        if isinstance(event, AgentStart):
            starts += 1
            if starts == 3:
                break
    assert handle.cancel() is True
    result = handle.result(timeout=60)  # ends only if the cancel stopped the running mappers
    assert handle.status().state == "cancelled"
    assert all(o.outcome == "cancelled" for o in result.map_outputs)
    assert sum(isinstance(e, AgentStart) for e in handle.events(follow=False)) == 3


def test_members_ride_through_a_redis_restart_with_rabbitmq_as_broker(
    rabbitmq_node: LocalRabbitMQ, tmp_path: Path
) -> None:
    """Run state restarts while the broker stays: the members' Redis commands, their
    completions and the chord's counting are retried until Redis is back, and every message
    is acknowledged to RabbitMQ (none is delivered again for a second run of its member)."""
    server = LocalRedis(appendonly=True)
    env = rabbit_env(rabbitmq_node, server.url)
    workers = start_workers(env, ["rr1", "rr2"], tmp_path, concurrency=6)
    try:
        client = client_for(env)
        handle = client.map_reduce(
            "Restart", items(8), scripted("m", latency_ms=2000), scripted("r"), 8
        )
        wait_for(
            lambda: sum(isinstance(e, AgentStart) for e in handle.events(follow=False)) >= 4,
            "members started",
            30,
        )
        server.shutdown()
        time.sleep(2)  # the outage: two seconds without Redis
        server.start()
        result = handle.result(timeout=60)
        assert [o.outcome for o in result.map_outputs] == ["ok"] * 8
        assert all(worker.process.poll() is None for worker in workers), "every worker survived"
        ends = Counter(e.index for e in handle.events(follow=False) if isinstance(e, AgentEnd))
        assert all(ends[i] == 1 for i in range(8)) and ends[None] == 1
    finally:
        for worker in workers:
            worker.stop()
        server.stop()


def test_a_sigkilled_workers_members_are_taken_over_at_once_not_after_the_lease(
    rabbitmq_node: LocalRabbitMQ, tmp_path: Path
) -> None:
    """RabbitMQ delivers a killed worker's unacknowledged messages again at once; their claims
    find the members' leases live, held by the dead process, and take them over because that
    process is positively gone (its named Redis connection closed with it).

    The lease is 60 s and the run is waited for 30 s after the kill: a lease renewed just
    before the kill cannot expire within the wait, so the watchdog's lease path cannot be
    what finishes the run. This is no assertion on speed: with the takeover removed the run
    simply cannot end before the lease does, and ``result`` times out.
    """
    server = LocalRedis()
    env = rabbit_env(rabbitmq_node, server.url, ORCHESTRATOR_LEASE_S="60")
    victim, survivor = start_workers(env, ["victim", "survivor"], tmp_path, concurrency=3)
    try:
        client = client_for(env)
        handle = client.map_reduce(
            "Survive", items(12), scripted("mapper", latency_ms=1500), scripted("reducer"), 6
        )
        state = redis.Redis.from_url(server.url)
        holders = RunKeys(handle.id).holders

        def running() -> int:
            """Members an execution holds (others are queued or prefetched)."""
            values = [v.decode() for v in state.hvals(holders)]
            return sum(1 for v in values if not v.startswith(("a:", "r:")))

        def victim_started() -> set[int]:
            return {
                e.index
                for e in handle.events(follow=False)
                if isinstance(e, AgentStart)
                and e.index is not None
                and e.worker.endswith(f":{victim.pid}")
            }

        wait_for(
            lambda: running() >= 6 and victim_started(), "the first window started on both", 30
        )
        held_by_victim = victim_started()
        victim.kill()

        result = handle.result(timeout=30)  # well below the 60 s lease: see the docstring
        assert handle.status().state == "succeeded"
        assert [o.name for o in result.map_outputs] == [f"mapper_{i}" for i in range(12)]
        assert all(o.outcome == "ok" for o in result.map_outputs)
        events = list(handle.events(follow=False))
        starts = Counter(e.index for e in events if isinstance(e, AgentStart))
        ends = Counter(e.index for e in events if isinstance(e, AgentEnd))
        # Each item ran to completion exactly once; the victim's ran again elsewhere.
        assert all(ends[i] == 1 for i in range(12)), ends
        assert {i for i, n in starts.items() if i is not None and n > 1} == held_by_victim
        # The chord fired its body once: one reducer start, one reducer output.
        assert starts[None] == 1 and ends[None] == 1
        assert result.reducer_output is not None and result.reducer_output.outcome == "ok"
    finally:
        victim.kill()
        survivor.stop()
        server.stop()


def test_live_workers_are_not_taken_over_when_rabbitmq_delivers_again(
    rabbitmq_node: LocalRabbitMQ, tmp_path: Path
) -> None:
    """A second delivery of a member whose holder is alive (RabbitMQ delivers again after a
    consumer's channel closed, say) is dropped: the member runs once, to completion."""
    server = LocalRedis()
    env = rabbit_env(rabbitmq_node, server.url)
    (worker,) = start_workers(env, ["alive"], tmp_path, concurrency=4)
    try:
        client = client_for(env)
        handle = client.map_reduce(
            "Once", items(1), scripted("m", latency_ms=2000), scripted("r"), 1
        )
        wait_for(
            lambda: any(isinstance(e, AgentStart) for e in handle.events(follow=False)),
            "the member started",
            30,
        )
        # The same member again, as a redelivery would bring it, while its holder runs it.
        again = client._celery.send_task(
            "tasks.agents.run_member", args=(handle.id, 0), queue="agents"
        )
        log = tmp_path / "alive.log"

        def handled() -> str | None:
            """How the duplicate's task ended, as the worker's log tells."""
            text = log.read_text(errors="replace")
            return next(
                (end for end in ("ignored", "succeeded") if f"{again.id}] {end}" in text), None
            )

        # The positive signal: the duplicate was handled (dropped, or run if it took over).
        ending = wait_for(handled, "the duplicate was handled", 60)
        assert ending == "ignored", "the duplicate took the member over from its live holder"
        result = handle.result(timeout=30)
        assert result.map_outputs[0].outcome == "ok"
        starts = [e for e in handle.events(follow=False) if isinstance(e, AgentStart)]
        assert [e.index for e in starts] == [0, None], "the duplicate never started the member"
        assert worker.process.poll() is None
    finally:
        worker.stop()
        server.stop()
