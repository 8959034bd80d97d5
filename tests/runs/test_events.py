"""Live events: order guarantees across workers, and attaching during or after a run."""

from __future__ import annotations

import json
import time
from pathlib import Path

from orchestrator import Client
from orchestrator.local import LocalRedis, LocalWorker
from orchestrator.state.events import (
    AgentEnd,
    AgentStart,
    Event,
    ModelTurn,
    ParallelLoopEnd,
    ParallelLoopStart,
    RunEnd,
    RunStart,
    ToolCallEnd,
    ToolCallStart,
)
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, run_cli, scripted, start_workers

TWO_TURNS = [{"tool_calls": [{"name": "lookup", "arguments": {"q": "x"}}]}, {"text": "done"}]


def test_branch_events_keep_their_order_across_workers(tmp_path: Path) -> None:
    server = LocalRedis()
    env = {"ORCHESTRATOR_REDIS_URL": server.url, **FAST_TIMINGS}
    # One slot each: the two branches cannot both run on one worker.
    workers = start_workers(env, ["left", "right"], tmp_path, concurrency=1)
    try:
        client = Client(redis_url=server.url)
        configs = [scripted(f"b{i}", latency_ms=300, script=TWO_TURNS) for i in range(2)]
        handle = client.parallel_branches(configs, prompt="q", session_id="sess")
        events = list(handle.events())
    finally:
        for worker in workers:
            worker.stop()
        server.stop()

    assert isinstance(events[0], RunStart)
    assert isinstance(events[1], ParallelLoopStart)
    assert events[1].loop_ids == ["sess.scripted.scripted-1.1", "sess.scripted.scripted-1.2"]
    assert isinstance(events[-2], ParallelLoopEnd) and isinstance(events[-1], RunEnd)
    assert events[-2].selected_loop_id == "sess.scripted.scripted-1.1"
    starts = [e for e in events if isinstance(e, AgentStart)]
    assert len({e.worker for e in starts}) == 2, "each branch ran on its own worker"
    for loop_id in events[1].loop_ids:
        mine = [e for e in events if getattr(e, "loop_id", None) == loop_id]
        assert [type(e) for e in mine] == [
            AgentStart,
            ModelTurn,
            ToolCallStart,
            ToolCallEnd,
            ModelTurn,
            AgentEnd,
        ]
        assert [e.turn for e in mine if isinstance(e, ModelTurn)] == [1, 2]


def test_map_reduce_events_identify_mappers_by_item_index(client: Client) -> None:
    handle = client.map_reduce("Events", items(3), scripted("mapper"), scripted("reducer"), 3)
    events = list(handle.events())
    per_item = {i: [type(e) for e in events if getattr(e, "index", None) == i] for i in range(3)}
    assert all(kinds == [AgentStart, ModelTurn, AgentEnd] for kinds in per_item.values())


def test_events_can_be_followed_after_the_run_ended(client: Client) -> None:
    handle = client.run_agent(scripted("a"), "hello")
    handle.wait(30)
    attached = client.get_run(handle.id)
    events: list[Event] = list(attached.events(follow=True))
    assert isinstance(events[0], RunStart) and isinstance(events[-1], RunEnd)
    assert [type(e) for e in events] == [RunStart, AgentStart, ModelTurn, AgentEnd, RunEnd]


def test_events_attached_mid_run_start_from_the_beginning(client: Client) -> None:
    handle = client.map_reduce(
        "Slow", items(4), scripted("mapper", latency_ms=300), scripted("reducer"), 1
    )
    while handle.status().finished_members < 1:
        time.sleep(0.02)
    events = list(client.get_run(handle.id).events())
    assert isinstance(events[0], RunStart) and isinstance(events[-1], RunEnd)
    assert sum(isinstance(e, AgentEnd) for e in events) == 5  # four mappers and the reducer


def test_events_cli_prints_one_json_event_per_line(
    client: Client, worker_env: dict[str, str], workers: list[LocalWorker]
) -> None:
    handle = client.run_agent(scripted("a"), "hello")
    done = run_cli("events", handle.id, env=worker_env)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[0]["type"] == "RunStart" and lines[-1]["type"] == "RunEnd"
    assert all(line["run_id"] == handle.id for line in lines)
