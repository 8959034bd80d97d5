"""A submit that failed discards what it wrote of its run, only while the run is pending: a
sweep that admitted the run meanwhile (its publish retried past a sweep interval) made it a
run whose members are queued, which goes on. Driven at the store."""

from __future__ import annotations

from uuid import uuid4

import redis

from orchestrator.config.settings import Settings
from orchestrator.local import LocalRedis
from orchestrator.models.requests import MapReduceRequest
from orchestrator.state.keys import ACTIVE_RUNS, run_keys
from orchestrator.state.store import RunStore
from tests.helpers import scripted
from tests.redis_faults.test_redis_full import fill


def new_run(store: RunStore) -> str:
    run_id = uuid4().hex
    request = MapReduceRequest(task="t", mapper=scripted("m"), reducer=scripted("r"), item_count=2)
    store.create_run(run_id, request, ["0", "1"])
    return run_id


def test_discard_deletes_a_pending_run_and_keeps_one_a_sweep_admitted(
    private_redis: LocalRedis,
) -> None:
    client = redis.Redis.from_url(private_redis.url)
    store = RunStore(client, Settings(redis_url=private_redis.url))
    admitted, pending = new_run(store), new_run(store)
    assert store.start(admitted, "node").admitted == [0, 1]  # what a sweep does

    fill(client)  # a submit fails when Redis is full: the discard runs then
    store.discard(admitted)
    store.discard(pending)

    status = store.status(admitted)
    assert status is not None and status.state == "running" and status.in_flight == 2
    assert client.zscore(ACTIVE_RUNS, admitted) is not None
    assert store.status(pending) is None
    assert not client.exists(*run_keys(pending).all)
    assert client.zscore(ACTIVE_RUNS, pending) is None
