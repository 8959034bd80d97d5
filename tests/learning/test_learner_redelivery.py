"""A learner batch delivered again (its learner killed, or held past the visibility timeout)
counts each of its records once, sets aside only the record a learner died on, and is learned
by one learner at a time (``learners.redelivery``)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from uuid import uuid4

import redis

from learners.ingest import ingest_records
from learners.redelivery import deliveries_ttl_s, ingest_batch
from orchestrator.config.governor import CacheGovernorConfig
from orchestrator.local import LocalRedis
from orchestrator.plans.cache_store import CachePlanStore
from orchestrator.plans.keys import learner_deliveries_key, plan_seen_key
from orchestrator.plans.store import PlanStore
from tests.learning.test_learner_limits import model_call
from tests.learning.test_learner_logic import T0, record

CONFIG = CacheGovernorConfig()


def batch_of(count: int, prefix: str) -> tuple[list[str], list[Any]]:
    """``count`` agents of one record each (two overlapping tools and a model call), then a
    malformed record."""
    agents = [f"{prefix}-{index}-{uuid4().hex[:6]}" for index in range(count)]
    records = []
    for agent in agents:
        raw = record(("a", 0, 2), ("b", 1, 3), agent=agent).model_dump(mode="json")
        raw["calls"].append(model_call(T0, ["s"]))
        records.append(raw)
    return agents, [*records, {"run_id": "broken"}]


def observations(client: redis.Redis, agents: list[str]) -> set[int]:
    """How many model calls the cache learner took in, per agent."""
    plans = CachePlanStore(client)
    return {
        sum(p.total_observations for p in plan.profiles.values()) if plan else 0
        for plan in (plans.get(agent) for agent in agents)
    }


def seen_counts(client: redis.Redis, agents: list[str]) -> set[int]:
    return {int(raw or 0) for raw in client.mget([plan_seen_key(agent) for agent in agents])}


def test_a_batch_delivered_again_is_learned_a_record_at_a_time_from_where_it_died(
    redis_server: LocalRedis,
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    plans = PlanStore(client)
    agents = [f"again-{uuid4().hex[:8]}" for _ in range(3)]
    batch = [record(("a", 0, 2), ("b", 1, 3), agent=a).model_dump(mode="json") for a in agents]
    first, second = f"t1-{uuid4().hex}", f"t2-{uuid4().hex}"
    before, _ = plans.rejected()
    # The first start died somewhere: the second learns every record, one at a time.
    client.hset(learner_deliveries_key(first), mapping={"starts": 1})
    report = ingest_batch(client, first, batch, CONFIG)
    assert report.ingested == 3 and report.rejected == [] and plans.rejected()[0] == before
    assert all(plans.get(agent) is not None for agent in agents)
    # The second start died on record 2: the third sets it aside and finishes.
    others = [dict(raw, agent_id=f"{raw['agent_id']}-b") for raw in batch]
    client.hset(learner_deliveries_key(second), mapping={"starts": 2, "done": 2})
    report = ingest_batch(client, second, others, CONFIG)
    assert report.rejected == ["record 2: its learner died on it (delivered 3 times)"]
    assert report.ingested == 0 and plans.get(f"{agents[2]}-b") is None
    # Both are marked finished, not deleted: a delivery after this one learns nothing.
    for task in (first, second):
        assert client.hget(learner_deliveries_key(task), "finished") == b"1"


def test_a_batch_delivered_after_it_was_learned_counts_nothing_again(
    redis_server: LocalRedis,
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    plans = PlanStore(client)
    agents, batch = batch_of(20, "twice")
    task = uuid4().hex
    before, _ = plans.rejected()
    ttl_s = deliveries_ttl_s(100_000)  # a visibility timeout above the default TTL
    first = ingest_batch(client, task, batch, CONFIG, ttl_s)
    assert first.ingested == 20 and len(first.rejected) == 1
    # Killed after it finished, before its acknowledgement: delivered again.
    again = ingest_batch(client, task, batch, CONFIG, ttl_s)
    assert again.ingested == 0 and again.rejected == []
    assert seen_counts(client, agents) == {1} and plans.rejected()[0] == before + 1
    assert observations(client, agents) == {1}
    assert client.ttl(learner_deliveries_key(task)) > 100_000


def test_a_record_counted_before_its_learner_died_is_not_set_aside(
    redis_server: LocalRedis,
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    plans = PlanStore(client)
    agents, batch = batch_of(3, "counted")
    task = uuid4().hex
    key = learner_deliveries_key(task)
    before, _ = plans.rejected()
    # A second start, learning one record at a time, learned and counted records 0 and 1,
    # noted record 0 done, and was killed before it noted record 1.
    client.hset(key, mapping={"starts": 2, "done": 1})
    cache_plans = CachePlanStore(client)
    for index in (0, 1):
        once = (task, 3600)
        ingest_records(batch[index : index + 1], plans, cache_plans, CONFIG, index, once)
    # The third start: record 1 was learned to the end, so it is not set aside.
    report = ingest_batch(client, task, batch, CONFIG)
    assert len(report.rejected) == 1 and report.rejected[0].startswith("record 3: ")
    assert report.ingested == 1  # record 2, the one not learned before
    assert seen_counts(client, agents) == {1} and plans.rejected()[0] == before + 1


def test_concurrent_deliveries_of_one_batch_count_each_record_once(
    redis_server: LocalRedis,
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    plans = PlanStore(client)
    agents, batch = batch_of(200, "concurrent")
    task = uuid4().hex
    before, _ = plans.rejected()
    reports: list[Any] = []
    learners = [
        threading.Thread(
            target=lambda: reports.append(
                ingest_batch(redis.Redis.from_url(redis_server.url), task, batch, CONFIG)
            )
        )
        for _ in range(3)
    ]
    for learner in learners:
        learner.start()
    for learner in learners:
        learner.join()
    assert len(reports) == 3
    assert sorted(report.ingested for report in reports) == [0, 0, 200]
    assert seen_counts(client, agents) == {1} and plans.rejected()[0] == before + 1


LEARNER = """
import json, sys
import redis
from learners.ingest import ingest_records
from learners.redelivery import ingest_batch
from orchestrator.config.governor import CacheGovernorConfig
from orchestrator.plans.cache_store import CachePlanStore
url, task, path = sys.argv[1:]
ingest_batch(redis.Redis.from_url(url), task, json.load(open(path)), CacheGovernorConfig(),
             lease_s=1.0)
"""


def test_a_learner_killed_while_counting_leaves_counts_its_redelivery_completes(
    private_redis: LocalRedis, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(private_redis.url)
    plans = PlanStore(client)
    agents, batch = batch_of(2000, "killed")
    task = uuid4().hex
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(batch))
    learner = subprocess.Popen([sys.executable, "-c", LEARNER, private_redis.url, task, str(path)])
    try:
        # The positive signal: counting has begun (a seen-count exists), or it ended.
        while learner.poll() is None and not client.keys("ao:plan:*:seen"):
            threading.Event().wait(0.005)
        learner.send_signal(signal.SIGKILL)
    finally:
        learner.wait()
    # Delivered again (the late acknowledgement never came): every record counted once.
    ingest_batch(client, task, batch, CONFIG, lease_s=1.0)
    assert seen_counts(client, agents) == {1}
    assert plans.rejected()[0] == 1
    assert observations(client, agents) == {1}  # the cache learner took each call in once
