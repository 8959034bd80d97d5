"""Many members at once in one worker process, and members that share task messages."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import redis

from orchestrator import Client
from orchestrator.local import LocalRedis, LocalWorker, wait_for_workers
from orchestrator.state.events import AgentEnd, AgentStart, Event
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, scripted

# redis-py's default pool: 100 connections, after which a command raised at once.
DEFAULT_POOL = 100


def most_at_once(events: list[Event]) -> int:
    """The most members that had started and not ended at one point of the event stream."""
    running = peak = 0
    for event in events:
        if isinstance(event, AgentStart) and event.index is not None:
            running += 1
            peak = max(peak, running)
        elif isinstance(event, AgentEnd) and event.index is not None:
            running -= 1
    return peak


def test_one_process_with_1000_threads_runs_1000_members_with_none_retried(
    private_redis: LocalRedis, tmp_path: Path
) -> None:
    log = tmp_path / "wide.log"
    # The default lease and heartbeat: this test is about pools, and the tests' 2 s lease can
    # run out for a process starting 1,000 members on a busy machine (then a member is taken
    # over, as it should be, and counted twice here).
    env = {
        "ORCHESTRATOR_REDIS_URL": private_redis.url,
        **FAST_TIMINGS,
        "ORCHESTRATOR_LEASE_S": "30",
        "ORCHESTRATOR_HEARTBEAT_S": "2",
    }
    worker = LocalWorker("wide", env, concurrency=1000, log_path=log)
    try:
        wait_for_workers(redis.Redis.from_url(private_redis.url), [worker.hostname])
        client = Client(redis_url=private_redis.url)
        # Members of 4 s: one process starts a few hundred members a second when the machine
        # is quiet, half that beside other work, so more than a pool's worth overlap either way.
        mapper = scripted("mapper", latency_ms=4000)
        handle = client.map_reduce("Wide", items(1000), mapper, scripted("reducer"), 1000)
        result = handle.result(timeout=300)
        events = list(handle.events(follow=False))
    finally:
        worker.stop()
    assert [o.outcome for o in result.map_outputs] == ["ok"] * 1000
    # The members were at once more than a default pool has connections: the situation in
    # which members failed on a full pool.
    assert most_at_once(events) > DEFAULT_POOL
    starts = Counter(e.index for e in events if isinstance(e, AgentStart) and e.index is not None)
    assert starts == Counter(range(1000)), "every member claimed once: none retried or re-run"
    text = log.read_text()
    assert "Retry in" not in text and "MaxConnectionsError" not in text
    assert "No connection available" not in text


def member_messages(log_dir: Path, run_id: str) -> int:
    """How many task messages carrying members of the run the workers received."""
    return sum(
        1
        for log in log_dir.glob("*.log")
        for line in log.read_text().splitlines()
        if f"[{run_id}-" in line and "received" in line and "run_member" in line
    )


def test_members_sharing_messages_are_each_counted_once_in_the_chord(
    client: Client, log_dir: Path
) -> None:
    # 40 short members on a cap of 20: the first window travels as batches, and the members
    # let in later run in the lanes of the ones that ended.
    mapper = scripted("mapper", latency_ms=20)
    handle = client.map_reduce("Lanes", items(40), mapper, scripted("reducer"), 20)
    result = handle.result(timeout=120)
    assert [o.outcome for o in result.map_outputs] == ["ok"] * 40
    assert result.reducer_output is not None and result.reducer_output.outcome == "ok"
    events = list(handle.events(follow=False))
    starts = Counter(e.index for e in events if isinstance(e, AgentStart) and e.index is not None)
    assert starts == Counter(range(40))
    assert most_at_once(events) <= 20
    assert member_messages(log_dir, handle.id) < 40, "members shared task messages"
