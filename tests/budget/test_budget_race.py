"""The window and budget scripts under racing coordinators, against a real Redis."""

from __future__ import annotations

import threading
from collections import Counter
from uuid import uuid4

import redis

from orchestrator.config.settings import Settings
from orchestrator.local import LocalRedis
from orchestrator.models import AgentOutput, Budget
from orchestrator.models.requests import MapReduceRequest
from orchestrator.state.events import AgentEnd, AgentStart
from orchestrator.state.keys import RunKeys
from orchestrator.state.store import RunStore
from tests.helpers import scripted


def new_run(store: RunStore, total: int, cap: int, budget: Budget) -> str:
    run_id = uuid4().hex
    request = MapReduceRequest(
        task="race",
        mapper=scripted("m"),
        reducer=scripted("r"),
        max_concurrent=cap,
        budget=budget,
        item_count=total,
    )
    store.create_run(run_id, request, [str(i) for i in range(total)])
    return run_id


def make_store(server: LocalRedis) -> RunStore:
    return RunStore(redis.Redis.from_url(server.url), Settings(redis_url=server.url))


def test_racing_admissions_grant_the_last_agent_slot_once(redis_server: LocalRedis) -> None:
    store = make_store(redis_server)
    run_id = new_run(store, total=40, cap=40, budget=Budget(max_agents=1))
    admitted: list[int] = []
    denied: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def coordinator() -> None:
        barrier.wait()
        admission = store.start(run_id, "node")
        with lock:
            admitted.extend(admission.admitted)
            denied.extend(index for index, _ in admission.denied)

    threads = [threading.Thread(target=coordinator) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 1
    assert sorted(admitted + denied) == list(range(40))


def test_concurrent_completions_never_exceed_cap_or_budget(redis_server: LocalRedis) -> None:
    store = make_store(redis_server)
    total, cap, max_agents = 300, 7, 120
    run_id = new_run(store, total, cap, Budget(max_agents=max_agents))
    first = store.start(run_id, "node")
    queue = list(first.admitted)
    seen: Counter[int] = Counter(first.admitted)
    denied: Counter[int] = Counter(index for index, _ in first.denied)
    peak = [len(queue)]
    lock = threading.Lock()

    def member_runner() -> None:
        while True:
            with lock:
                if not queue:
                    return
                index = queue.pop()
            output = AgentOutput(name=f"m_{index}")
            event = AgentEnd(run_id=run_id, name=output.name, index=index, outcome="ok")
            completion = store.complete(run_id, str(index), output, [event], node="node")
            in_flight = store.client.zcard(RunKeys(run_id).leases)
            with lock:
                peak[0] = max(peak[0], in_flight)
                queue.extend(completion.admission.admitted)
                seen.update(completion.admission.admitted)
                denied.update(index for index, _ in completion.admission.denied)

    # Each runner takes the next admitted member as soon as one exists; the queue only
    # empties for good when the run has nothing more to admit.
    runners = [threading.Thread(target=member_runner) for _ in range(cap)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    assert sum(seen.values()) == max_agents and max(seen.values()) == 1
    assert sum(denied.values()) == total - max_agents and max(denied.values()) == 1
    assert peak[0] <= cap
    assert store.status(run_id).counts["ok"] == max_agents  # type: ignore[union-attr]


def test_second_completion_of_a_member_keeps_the_first_output(redis_server: LocalRedis) -> None:
    store = make_store(redis_server)
    run_id = new_run(store, total=2, cap=2, budget=Budget())
    store.start(run_id, "node")
    first = AgentOutput(name="m_0", answer="first")
    late = AgentOutput(name="m_0", answer="late")
    event = AgentEnd(run_id=run_id, name="m_0", index=0, outcome="ok")
    start = AgentStart(run_id=run_id, name="m_0", index=0)
    assert store.claim(run_id, "0", "token-a", 60, start).action == "run"
    assert store.complete(run_id, "0", first, [event], node="node", token="token-a").stored
    # The same execution's call again (its reply lost with a connection) finds its output.
    again = store.complete(run_id, "0", late, [event], node="node", token="token-a")
    assert again.status == "duplicate" and again.output.answer == "first"  # type: ignore[union-attr]
    # An execution that never held the lease has its result discarded.
    stale = store.complete(run_id, "0", late, [event], node="node", token="token-b")
    assert stale.status == "discarded"
    assert store.claim(run_id, "0", "token-c", 60, start).action == "done"
    assert store.status(run_id).counts["ok"] == 1  # type: ignore[union-attr]
