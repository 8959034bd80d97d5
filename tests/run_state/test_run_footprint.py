"""Big runs stay small: what an ended run leaves in Redis, and reading its outputs in pages.

A map-reduce of a few hundred items runs on a Redis and a worker of its own (every queue, the
learners included), so that every key left in it, task results included, is the run's. It is
measured once every task it caused has ended: the learners have seen every record, and no
message waits or is unacknowledged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from pydantic import ValidationError

from benchmarks.throughput.footprint import run_footprint
from orchestrator import Client, MapReduceResult, RunHandle
from orchestrator.config.settings import Settings
from orchestrator.local import LocalRedis
from orchestrator.models import AgentOutput
from orchestrator.models.requests import MapReduceRequest
from orchestrator.plans.keys import plan_seen_key
from orchestrator.state.events import AgentEnd
from orchestrator.state.keys import ACTIVE_RUNS, RunKeys
from orchestrator.state.store import RunStore
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, scripted, start_workers, wait_for

ITEMS = 300
RESULT_TTL_S = 5000


@dataclass
class EndedRun:
    state: redis.Redis
    handle: RunHandle[MapReduceResult]
    result: MapReduceResult


@pytest.fixture(scope="module")
def ended_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EndedRun]:
    """A 300-item map-reduce that ended, on a Redis and worker of its own whose runs are kept
    ``RESULT_TTL_S``, once its learners ingested every record."""
    server = LocalRedis()
    env = {
        "ORCHESTRATOR_REDIS_URL": server.url,
        **FAST_TIMINGS,
        "ORCHESTRATOR_RESULT_TTL_S": str(RESULT_TTL_S),
    }
    log_dir: Path = tmp_path_factory.mktemp("footprint-logs")
    [worker] = start_workers(env, ["footprint"], log_dir)
    try:
        state = redis.Redis.from_url(server.url)
        client = Client(redis_url=server.url)
        handle = client.map_reduce(
            "Footprint", items(ITEMS), scripted("fp-mapper"), scripted("fp-reducer"), 50
        )
        result = handle.result(timeout=120)

        def learned(agent_id: str) -> int:
            return int(state.get(plan_seen_key(agent_id)) or 0)

        # Every record was ingested, and then every message was acknowledged: a task's result
        # is stored before its message is acknowledged.
        wait_for(lambda: learned("fp-mapper") == ITEMS, "the mappers' records were learned")
        wait_for(lambda: learned("fp-reducer") == 1, "the reducer's record was learned")
        wait_for(
            lambda: state.llen("learner") == 0 and state.hlen("unacked") == 0,
            "every message was taken and acknowledged",
        )
        yield EndedRun(state, handle, result)
    finally:
        worker.stop()
        server.stop()


def test_an_ended_run_keeps_at_most_1kb_per_item_besides_its_event_stream(
    ended_run: EndedRun,
) -> None:
    found = run_footprint(ended_run.state, ended_run.handle.id, all_task_results=True)
    # The event stream is bounded per run (``events_maxlen``), not per item: a run this small
    # has all of its events, a big one its last 10,000.
    found.bytes.pop("events")
    assert found.total <= 1024 * ITEMS, found.table(ITEMS)


@pytest.mark.parametrize("count", [1000, 5000])
def test_an_ended_run_of_a_thousand_items_and_up_keeps_at_most_1kb_per_item_in_all(
    tmp_path: Path, count: int
) -> None:
    """Its event stream included: a big run's events are trimmed once its readers had time
    to catch up (``ended_events_keep_s``, a fraction of a second here)."""
    server = LocalRedis()
    env = {"ORCHESTRATOR_REDIS_URL": server.url, **FAST_TIMINGS}
    env["ORCHESTRATOR_ENDED_EVENTS_KEEP_S"] = "0.5"
    [worker] = start_workers(env, [f"footprint{count}"], tmp_path, 16)
    try:
        state = redis.Redis.from_url(server.url)
        client = Client(redis_url=server.url)
        mapper, reducer = scripted("big-mapper"), scripted("big-reducer")
        handle = client.map_reduce("Footprint", items(count), mapper, reducer, 50)
        assert handle.result(timeout=300).all_succeeded()
        wait_for(
            lambda: int(state.get(plan_seen_key("big-mapper")) or 0) == count,
            "the mappers' records were learned",
        )
        wait_for(
            lambda: state.llen("learner") == 0 and state.hlen("unacked") == 0,
            "every message was taken and acknowledged",
        )
        # Its last sweep, due once the keep time passed, trims its events and forgets it.
        wait_for(lambda: state.zscore(ACTIVE_RUNS, handle.id) is None, "the run's last sweep")
        found = run_footprint(state, handle.id, all_task_results=True)
        assert found.bytes["events"] > 0, "the run keeps its last events"
        assert found.total <= 1024 * count, found.table(count)
    finally:
        worker.stop()
        server.stop()


def test_a_big_run_keeps_its_whole_event_stream_for_its_readers_then_its_last_events(
    private_redis: LocalRedis,
) -> None:
    client = redis.Redis.from_url(private_redis.url)
    waiting = RunStore(client, Settings(redis_url=private_redis.url, ended_events_keep_s=3600))
    run_id, count = "0" * 31 + "2", 1000
    request = MapReduceRequest(
        task="Big", mapper=scripted("m"), reducer=scripted("r"), item_count=count,
        max_concurrent=count,
    )  # fmt: skip
    waiting.create_run(run_id, request, items(count))
    for index in range(count):
        waiting.emit(run_id, AgentEnd(run_id=run_id, name=f"m_{index}", index=index, outcome="ok"))
    assert waiting.finalize(run_id, "succeeded", "")
    events = RunKeys(run_id).events
    whole = client.xlen(events)
    # A sweep right after the end (the run was due anyway) leaves the stream whole...
    assert waiting.trim_ended_events(run_id), "kept due until its readers had their time"
    assert client.xlen(events) == whole
    due = client.zscore(ACTIVE_RUNS, run_id)
    assert due is not None and due > waiting.now_ms()
    # ... and the sweep once that time passed keeps one event for every 4 members, RunEnd last.
    passed = RunStore(client, Settings(redis_url=private_redis.url, ended_events_keep_s=0))
    assert not passed.trim_ended_events(run_id)
    assert client.xlen(events) <= count // 4 + 100  # approximate trimming: whole nodes of 100
    [(_, last)] = client.xrevrange(events, count=1)
    assert b'"RunEnd"' in last[b"e"]


def test_no_task_result_is_kept_for_members_final_agents_coordinators_or_learners(
    ended_run: EndedRun,
) -> None:
    assert ended_run.result.reducer_output is not None  # a final agent ran
    assert list(ended_run.state.scan_iter(match="celery-task-meta-*")) == []


def test_map_reduce_records_go_to_the_learners_only(ended_run: EndedRun) -> None:
    # The learners saw every record (the fixture waited for it); the run kept none.
    assert not ended_run.state.exists(RunKeys(ended_run.handle.id).records)


def test_the_result_is_not_copied_into_the_run_hash(ended_run: EndedRun) -> None:
    ending = ended_run.state.hget(RunKeys(ended_run.handle.id).run, "result")
    assert ending is not None and len(ending) < 100
    assert [o.name for o in ended_run.result.map_outputs] == [
        f"fp-mapper_{i}" for i in range(ITEMS)
    ]


def test_an_ended_run_drops_its_items_and_lease_holders(ended_run: EndedRun) -> None:
    keys = RunKeys(ended_run.handle.id)
    assert not ended_run.state.exists(keys.items, keys.holders)


def test_what_an_ended_run_keeps_expires_after_the_configured_ttl(ended_run: EndedRun) -> None:
    kept = list(ended_run.state.scan_iter(match=f"{RunKeys(ended_run.handle.id).run}*"))
    assert len(kept) >= 3  # the run hash, its outputs, its events...
    ttls = [ended_run.state.ttl(key) for key in kept]
    assert all(0 < ttl <= RESULT_TTL_S for ttl in ttls), ttls


def test_the_result_ttl_comes_from_the_environment_and_must_be_positive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_RESULT_TTL_S", "3600")
    assert Settings().result_ttl_s == 3600
    monkeypatch.setenv("ORCHESTRATOR_RESULT_TTL_S", "0")
    with pytest.raises(ValidationError, match="result_ttl_s"):
        Settings()


# --- outputs in pages ----------------------------------------------------------------------


def test_outputs_are_read_in_pages_every_one_in_member_order(client: Client) -> None:
    handle = client.map_reduce("Pages", items(23), scripted("mapper"), scripted("reducer"), 8)
    result = handle.result(timeout=60)
    names = [f"mapper_{i}" for i in range(23)]
    assert [o.name for o in handle.outputs(page_size=5)] == names
    assert list(handle.outputs(page_size=5)) == result.map_outputs
    assert list(handle.outputs(start=7, stop=18, page_size=4)) == result.map_outputs[7:18]
    assert list(handle.outputs(start=20, page_size=1)) == result.map_outputs[20:]


def partly_run(url: str) -> RunHandle[MapReduceResult]:
    """A four-item run on a Redis no worker serves, so that it stays as written: admitted,
    members 0 and 2 ended, 1 and 3 not."""
    client = Client(redis_url=url)
    run_id = "0" * 31 + "1"
    request = MapReduceRequest(
        task="Partly", mapper=scripted("m"), reducer=scripted("r"), item_count=4, max_concurrent=4
    )
    client.store.create_run(run_id, request, items(4))
    assert client.store.start(run_id, "a-node").admitted == [0, 1, 2, 3]
    for index in (0, 2):
        output = AgentOutput(name=f"m_{index}", answer=f"done {index}")
        event = AgentEnd(run_id=run_id, name=output.name, index=index, outcome="ok")
        client.store.complete(run_id, str(index), output, [event], node="a-node")
    return RunHandle(client, run_id, MapReduceResult)


def test_outputs_during_a_run_skip_members_not_yet_ended(private_redis: LocalRedis) -> None:
    handle = partly_run(private_redis.url)
    assert [o.answer for o in handle.outputs(page_size=1)] == ["done 0", "done 2"]
    assert [o.answer for o in handle.outputs(start=1)] == ["done 2"]
    assert list(handle.outputs(stop=2)) == list(handle.outputs(stop=1))


def test_outputs_refuse_a_negative_bound_or_an_empty_page_at_once(
    private_redis: LocalRedis,
) -> None:
    handle = partly_run(private_redis.url)
    with pytest.raises(ValueError, match="negative"):
        handle.outputs(start=-1)
    with pytest.raises(ValueError, match="negative"):
        handle.outputs(stop=-2)
    with pytest.raises(ValueError, match="page_size"):
        handle.outputs(page_size=0)
