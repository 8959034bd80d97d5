"""Cancel and deadlines end any run that has not ended: queued members are revoked, model
calls in flight are aborted (the provider sees the connection close), members never published
end in bulk, and a run whose request the workers cannot read ends too."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

from orchestrator import Client, MapReduceResult, RunHandle
from orchestrator.local import LocalRedis
from orchestrator.models.requests import MapReduceRequest
from orchestrator.state.events import AgentStart
from orchestrator.state.keys import RunKeys, admit_task_id, member_task_id
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, scripted, start_workers, wait_for
from tests.servers.model_server import SlowModelServer


def test_cancel_aborts_model_calls_in_flight_and_revokes_queued_members(
    private_redis: LocalRedis, tmp_path: Path
) -> None:
    api = SlowModelServer(delay_s=600)
    env = {**FAST_TIMINGS, "ORCHESTRATOR_REDIS_URL": private_redis.url, **api.worker_env()}
    # A heartbeat longer than the wait below leaves the announcement of the cancel as the
    # only way the running members can learn of it in time.
    env["ORCHESTRATOR_HEARTBEAT_S"] = "120"
    env["ORCHESTRATOR_LEASE_S"] = "600"
    (worker,) = start_workers(env, ["calls"], tmp_path, 3)
    try:
        mapper = api.agent("mapper")
        client = Client(redis_url=private_redis.url)
        handle = client.map_reduce("Cancel", items(6), mapper, scripted("reducer"), 6)
        wait_for(lambda: len(api.received) == 3, "three calls in flight", 30, 0.01)
        assert handle.cancel() is True
        status = handle.wait(timeout=30)
        assert status.state == "cancelled"
        assert status.counts["cancelled"] == 6
        wait_for(lambda: len(api.abandoned) == 3, "every connection closed", 10, 0.01)
        assert api.answered == []
        starts = [e for e in handle.events(follow=False) if isinstance(e, AgentStart)]
        assert len(starts) == 3, "the queued members never started"
    finally:
        worker.stop()
        api.close()


def test_the_deadline_ends_a_100000_item_run_which_keeps_a_small_ending_and_every_output(
    client: Client,
) -> None:
    # One run of 100,000 items for both what the deadline does and what the ended run keeps
    # (its footprint, as tests/run_state/test_run_footprint.py checks for small runs): it is the
    # slowest run of the suite to create and end.
    mapper = scripted("mapper", latency_ms=600_000)
    handle = client.map_reduce("Huge", items(100_000), mapper, scripted("reducer"), 8, deadline_s=2)
    status = handle.wait(timeout=120)
    assert status.state == "cancelled" and status.cancel_reason == "deadline exceeded"
    assert status.counts["cancelled"] == 100_000 and status.in_flight == 0
    # The members never published were ended in bulk, in the run's state alone: not one at a
    # time through the result backend, as a member that ran is.
    never_published = client._celery.AsyncResult(member_task_id(handle.id, 99_999))
    assert never_published.state == "PENDING"
    # The ending kept in the run's hash stays small; the result still has every output.
    result = handle.result(timeout=120)
    ending = client.redis.hget(RunKeys(handle.id).run, "result")
    assert ending is not None and len(ending) < 1000
    assert len(result.map_outputs) == 100_000
    assert result.map_outputs[99_999].name == "mapper_99999"
    assert all(o.outcome == "cancelled" for o in result.map_outputs)


def test_a_run_whose_request_cannot_be_read_can_be_cancelled(client: Client) -> None:
    run_id = uuid4().hex
    request = MapReduceRequest(
        task="Unreadable", mapper=scripted("m"), reducer=scripted("r"), item_count=3
    )
    client.store.create_run(run_id, request, items(3))
    # What a worker cannot parse (a request from a newer client, or nested past its limits).
    client.redis.hset(RunKeys(run_id).run, "request", '{"kind": "map_reduce", "task": [')
    handle: RunHandle[MapReduceResult] = RunHandle(client, run_id, MapReduceResult)
    assert handle.cancel() is True
    client._celery.send_task(
        "tasks.coordinator.admit_run", args=(run_id,), task_id=admit_task_id(run_id)
    )
    status = handle.wait(timeout=30)
    assert status.state == "cancelled"
    assert status.counts["cancelled"] == 3
    assert handle.cancel() is False  # it has ended
