"""Leases start when an execution claims a member, follow the worker that holds it, and stop
an execution that lost its lease. Each test runs its own Redis and workers."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import pytest
import redis

from orchestrator import Client
from orchestrator.local import LocalRedis, LocalWorker
from orchestrator.state.events import AgentStart, ModelTurn, ToolCallStart
from orchestrator.state.keys import RunKeys
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, scripted, start_workers, wait_for
from tests.servers.model_server import SlowModelServer


def deliveries(log: Path, run_id: str) -> int:
    """How many member messages of the run the worker received (its INFO log says so)."""
    return sum(
        1
        for line in log.read_text().splitlines()
        if f"run_member[{run_id}-m" in line and "received" in line.lower()
    )


def test_a_backlog_of_many_leases_runs_each_member_once(
    private_redis: LocalRedis, tmp_path: Path
) -> None:
    # 12 members of 4 s on 2 slots wait up to 20 s in the queue: about seven leases of 3 s.
    api = SlowModelServer(delay_s=4)
    env = {
        "ORCHESTRATOR_REDIS_URL": private_redis.url,
        **FAST_TIMINGS,
        "ORCHESTRATOR_LEASE_S": "3",
        # A message each: the backlog waits in the broker's queue, not inside the worker.
        "ORCHESTRATOR_MEMBERS_PER_MESSAGE": "1",
        **api.worker_env(),
    }
    (worker,) = start_workers(env, ["busy"], tmp_path, 2)
    try:
        mapper = api.agent("mapper")
        client = Client(redis_url=private_redis.url)
        handle = client.map_reduce("Backlog", items(12), mapper, scripted("reducer"), 12)
        result = handle.result(timeout=180)
        assert [o.outcome for o in result.map_outputs] == ["ok"] * 12
        calls = Counter(prompt.rsplit(": ", 1)[-1] for prompt in api.received)
        assert calls == Counter(items(12)), "one model call per member, counted at the server"
        starts = Counter(
            e.index
            for e in handle.events(follow=False)
            if isinstance(e, AgentStart) and e.index is not None
        )
        assert starts == Counter(range(12))
        assert deliveries(tmp_path / "busy.log", handle.id) == 12, "no member was republished"
    finally:
        worker.stop()
        api.close()


def test_a_stalled_holder_loses_its_lease_and_makes_no_further_call(
    private_redis: LocalRedis, tmp_path: Path
) -> None:
    env = {"ORCHESTRATOR_REDIS_URL": private_redis.url, **FAST_TIMINGS}
    first, second = start_workers(env, ["first", "second"], tmp_path, 1)
    try:
        # Turn 1 takes 3 s and asks for a tool; turn 2 answers.
        script = [{"tool_calls": [{"name": "echo", "arguments": {"text": "hi"}}]}, {"text": "ok"}]
        agent = scripted("stalls", latency_ms=3000, script=script).model_copy(
            update={"tools": ["echo"]}
        )
        client = Client(redis_url=private_redis.url)
        handle = client.run_agent(agent, "go")
        starts: list[AgentStart] = []

        def started(count: int) -> bool:
            starts[:] = [e for e in handle.events(follow=False) if isinstance(e, AgentStart)]
            return len(starts) >= count

        wait_for(lambda: started(1), "the agent started")
        holder = (
            first if starts[0].worker and starts[0].worker.endswith(f":{first.pid}") else second
        )
        os.kill(holder.pid, signal.SIGSTOP)  # frozen inside its first model call
        try:
            # The lease expires and the other worker's watchdog hands the member over.
            wait_for(lambda: started(2), "another execution took the member over")
            assert starts[1].worker is not None and not starts[1].worker.endswith(f":{holder.pid}")
        finally:
            os.kill(holder.pid, signal.SIGCONT)
        result = handle.result(timeout=60)
        assert result.output.outcome == "ok" and result.output.answer == "ok"
        # The stalled execution wakes, stops, and has its result discarded: its worker drops
        # the delivery without a result, and logs it as ignored.
        log = tmp_path / f"{holder.name}.log"
        wait_for(
            lambda: f"run_member[{handle.id}-m0] ignored" in log.read_text(),
            "the stalled execution ended",
        )
        events = list(handle.events(follow=False))
        tool_calls = [e for e in events if isinstance(e, ToolCallStart)]
        second_turns = [e for e in events if isinstance(e, ModelTurn) and e.turn == 2]
        assert len(tool_calls) == 1, "only the execution that held the lease called the tool"
        assert len(second_turns) == 1, "the stalled execution made no further model call"
    finally:
        os.kill(first.pid, signal.SIGCONT)
        os.kill(second.pid, signal.SIGCONT)
        first.stop()
        second.stop()


@pytest.mark.parametrize(
    ("per_message", "count"),
    [("1", 6), ("16", 32)],
    ids=["prefetched-messages", "one-batch-message"],
)
def test_a_killed_worker_s_prefetched_and_running_members_run_elsewhere(
    private_redis: LocalRedis, tmp_path: Path, per_message: str, count: int
) -> None:
    env = {
        "ORCHESTRATOR_REDIS_URL": private_redis.url,
        **FAST_TIMINGS,
        "ORCHESTRATOR_MEMBERS_PER_MESSAGE": per_message,
        # A run's first window travels in batches only when the operator says so.
        "ORCHESTRATOR_FIRST_WINDOW_BATCHES": "1",
    }
    # One slot, four messages taken at a time: the victim holds one running member and
    # prefetched messages that wait for its slot. A batch message runs one member in the slot
    # and hands the others back to the broker, a message each, and the victim takes three.
    # (32 members: a window that wide is published in batches.)
    (victim,) = start_workers(env, ["victim"], tmp_path, 1, ["--prefetch-multiplier", "4"])
    survivor: LocalWorker | None = None
    try:
        client = Client(redis_url=private_redis.url)
        mapper = scripted("mapper", latency_ms=4000)
        handle = client.map_reduce("Prefetch", items(count), mapper, scripted("reducer"), count)
        state = redis.Redis.from_url(private_redis.url)
        holders = RunKeys(handle.id).holders

        def holding() -> tuple[int, int]:
            values = [v.decode() for v in state.hvals(holders)]
            received = sum(1 for v in values if v == f"r:{victim.hostname}")
            running = sum(1 for v in values if not v.startswith(("a:", "r:")))
            return received, running

        # All four messages (or the batch) taken: one member running, the others received.
        # (A worker killed in the moment between taking a message and recording its
        # reception leaves its members to the broker's visibility timeout: see
        # docs/how-it-works/guarantees.md.)
        if count == 6:
            wait_for(lambda: holding() == (3, 1), "the victim prefetched")
        else:  # the second batch waits for the slot the first holds, its members received
            wait_for(lambda: holding()[1] == 1 and holding()[0] >= 16, "the victim prefetched")
        victim.kill()
        (survivor,) = start_workers(env, ["survivor"], tmp_path, count)
        result = handle.result(timeout=120)
        assert [o.outcome for o in result.map_outputs] == ["ok"] * count
        assert [o.name for o in result.map_outputs] == [f"mapper_{i}" for i in range(count)]
        starts = Counter(e.worker for e in handle.events(follow=False) if isinstance(e, AgentStart))
        assert sum(1 for w in starts if w and w.endswith(f":{victim.pid}")) == 1
        assert starts[next(w for w in starts if w and w.endswith(f":{victim.pid}"))] == 1
    finally:
        victim.kill()
        if survivor is not None:
            survivor.stop()
