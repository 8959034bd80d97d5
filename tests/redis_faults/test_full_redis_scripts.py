"""A full Redis refuses a run script up front (its Redis 7 flags, without ``allow-oom``), never
half of one: a completion whose first write is a deletion (which Redis lets through while full)
stores nothing and admits no one. Only a lease renewal (``allow-oom``) runs while it is full.
Driven at the store, against a Redis of the test's own."""

from __future__ import annotations

from uuid import uuid4

import pytest
import redis
from redis.exceptions import OutOfMemoryError

from orchestrator.config.settings import Settings
from orchestrator.local import LocalRedis
from orchestrator.models import AgentOutput, Budget
from orchestrator.models.requests import MapReduceRequest
from orchestrator.state.budget import RunBudget
from orchestrator.state.events import AgentEnd, AgentStart
from orchestrator.state.keys import run_keys
from orchestrator.state.store import RunStore
from tests.helpers import scripted
from tests.redis_faults.test_redis_full import fill
from workers.providers.budgeted import CallBudget


def test_a_full_redis_refuses_a_completion_whole_and_admits_no_one(
    private_redis: LocalRedis,
) -> None:
    client = redis.Redis.from_url(private_redis.url)
    store = RunStore(client, Settings(redis_url=private_redis.url))
    run_id = uuid4().hex
    request = MapReduceRequest(
        task="t", mapper=scripted("m"), reducer=scripted("r"), item_count=3, max_concurrent=1,
        budget=Budget(max_tokens=100_000),
    )  # fmt: skip
    store.create_run(run_id, request, ["0", "1", "2"])
    assert store.start(run_id, "node").admitted == [0]
    store.confirm_published(run_id, "node", ["0"])
    start = AgentStart(run_id=run_id, name="m_0", index=0)
    assert store.claim(run_id, "0", "t", 60, start).action == "run"
    # The member made a call whose settle was lost: its completion closes the attempt first,
    # a deletion (of the call's end marker) that Redis accepts while full.
    calls = CallBudget(RunBudget(client, run_id), "0", "t", cost_limited=False)
    calls.next_call_id()
    keys = run_keys(run_id)

    fill(client)
    assert store.status(run_id).writes_refused is not None  # type: ignore[union-attr]
    output = AgentOutput(name="m_0")
    end = AgentEnd(run_id=run_id, name="m_0", index=0, outcome="ok")
    with pytest.raises(OutOfMemoryError):
        store.complete(run_id, "0", output, [end], node="node", token="t", calls=calls.made)
    assert client.hlen(keys.outputs) == 0
    status = store.status(run_id)
    assert status is not None and status.counts["ok"] == 0 and status.in_flight == 1
    assert client.zrange(keys.leases, 0, -1) == [b"0"]  # no member admitted
    # The member's lease is renewed all the same: it keeps its output meanwhile.
    assert [r.status for r in store.renew([(run_id, "0", "t")])] == ["ok"]

    client.config_set("maxmemory", 0)
    done = store.complete(run_id, "0", output, [end], node="node", token="t", calls=calls.made)
    assert done.stored and done.admission.admitted == [1]
