"""The watchdog sweeps each active run once per interval across all workers, and workers are
listed (with their tools) while they are present."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

import workers.coordination.watchdog as watchdog_module
from orchestrator import AgentSpec, Client
from orchestrator.config.settings import Settings
from orchestrator.local import LocalRedis, LocalWorker, wait_for_workers
from orchestrator.models.requests import AgentRunRequest
from orchestrator.state.keys import ACTIVE_RUNS
from orchestrator.state.store import RunStore
from tests.conftest import FAST_TIMINGS
from tests.helpers import wait_for
from workers.coordination.watchdog import Watchdog

APP = Celery("watchdog-tests", set_as_current=False)


@pytest.fixture
def server() -> Iterator[LocalRedis]:
    private = LocalRedis()  # no worker of the session sweeps (and forgets) these runs
    yield private
    private.stop()


def new_store(server: LocalRedis, sweep_s: float) -> RunStore:
    settings = Settings(redis_url=server.url, sweep_s=sweep_s)
    return RunStore(redis.Redis.from_url(server.url), settings)


def add_due_runs(store: RunStore, count: int) -> list[str]:
    """``count`` run ids due for a sweep now (the sweep itself is recorded, not run)."""
    run_ids = [f"run-{i}" for i in range(count)]
    store.client.zadd(ACTIVE_RUNS, dict.fromkeys(run_ids, 0))
    return run_ids


class Recorder:
    """Stands in for ``sweep_run``: records which watchdog (by its store) swept which run."""

    def __init__(self, owners: dict[int, str]) -> None:
        self.owners = owners
        self.sweeps: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, app: Celery, store: RunStore, run_id: str) -> None:
        with self._lock:
            self.sweeps.append((self.owners[id(store)], run_id))

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(run_id for _, run_id in self.sweeps)


def test_concurrent_claims_take_each_due_run_once(server: LocalRedis) -> None:
    stores = [new_store(server, 60) for _ in range(6)]
    run_ids = add_due_runs(stores[0], 600)
    claimed: list[list[str]] = [[] for _ in stores]
    start = threading.Barrier(len(stores))

    def claim_all(position: int) -> None:
        start.wait()
        while due := stores[position].claim_sweeps(7, 60):
            claimed[position].extend(due)

    threads = [threading.Thread(target=claim_all, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    taken = Counter(run_id for batch in claimed for run_id in batch)
    assert set(taken) == set(run_ids)
    assert max(taken.values()) == 1
    # Every claimer ended on an empty claim: nothing is due again within the interval.
    assert stores[0].claim_sweeps(1000, 60) == []


def test_two_watchdogs_never_sweep_a_run_twice_in_one_interval(
    server: LocalRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = [new_store(server, 60), new_store(server, 60)]
    recorder = Recorder({id(stores[0]): "a", id(stores[1]): "b"})
    monkeypatch.setattr(watchdog_module, "sweep_run", recorder)
    run_ids = add_due_runs(stores[0], 300)
    watchdogs = [Watchdog(APP, store, 60, batch=7) for store in stores]
    for watchdog, name in zip(watchdogs, ["a", "b"], strict=True):
        watchdog.start(name)
    try:
        wait_for(lambda: len(recorder.counts()) == len(run_ids), "every run was swept", 30)
        # Both watchdogs pass again within the same interval: there is nothing due for them.
        assert [watchdog.sweep_once() for watchdog in watchdogs] == [0, 0]
    finally:
        for watchdog in watchdogs:
            watchdog.stop()
    counts = recorder.counts()
    assert set(counts) == set(run_ids)
    assert max(counts.values()) == 1, "a run was swept twice in one interval"


def test_every_active_run_is_swept_every_couple_of_intervals(
    server: LocalRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = [new_store(server, 0.3) for _ in range(4)]
    recorder = Recorder({id(store): f"w{i}" for i, store in enumerate(stores)})
    monkeypatch.setattr(watchdog_module, "sweep_run", recorder)
    run_ids = add_due_runs(stores[0], 120)
    watchdogs = [Watchdog(APP, store, 0.3, batch=16) for store in stores]
    for position, watchdog in enumerate(watchdogs):
        watchdog.start(f"w{position}")
    try:
        wait_for(
            lambda: min(recorder.counts().get(run_id, 0) for run_id in run_ids) >= 3,
            "every run was swept three times",
            30,
        )
        # No run is left behind: each stays due within one interval from now.
        now = stores[0].now_ms()
        scores = stores[0].client.zrange(ACTIVE_RUNS, 0, -1, withscores=True)
        assert len(scores) == len(run_ids)
        assert all(score <= now + 300 for _, score in scores)
    finally:
        for watchdog in watchdogs:
            watchdog.stop()


def test_a_run_is_due_from_creation_until_it_ends(server: LocalRedis) -> None:
    store = new_store(server, 5)
    before = store.now_ms()
    request = AgentRunRequest(spec=AgentSpec(name="a"), prompt="hi", session_id="s")
    store.create_run("r1", request)
    store.create_run("r2", request)
    due = store.client.zscore(ACTIVE_RUNS, "r1")
    assert due is not None and before + 5000 <= due <= store.now_ms() + 5000
    assert sorted(store.active_runs()) == ["r1", "r2"]
    assert store.finalize("r1", "succeeded", "{}")
    store.forget_active("r2")
    assert store.active_runs() == []


def start_worker(name: str, env: dict[str, str], log_dir: Path) -> LocalWorker:
    return LocalWorker(name, env, concurrency=2, log_path=log_dir / f"{name}.log")


def test_workers_lists_live_workers_and_drops_a_killed_one(
    server: LocalRedis, tmp_path: Path
) -> None:
    env = {"ORCHESTRATOR_REDIS_URL": server.url, **FAST_TIMINGS}
    keeper, doomed = start_worker("keeper", env, tmp_path), start_worker("doomed", env, tmp_path)
    try:
        wait_for_workers(redis.Redis.from_url(server.url), [keeper.hostname, doomed.hostname])
        client = Client(redis_url=server.url)
        assert client.workers() == sorted([keeper.hostname, doomed.hostname])
        doomed.kill()  # no goodbye: its presence must expire
        wait_for(
            lambda: doomed.hostname not in client.workers(), "the killed worker left the list", 30
        )
        assert client.workers() == [keeper.hostname]
    finally:
        doomed.kill()
        keeper.stop()


def test_tools_drops_a_stopped_workers_tools(server: LocalRedis, tmp_path: Path) -> None:
    env = {"ORCHESTRATOR_REDIS_URL": server.url, **FAST_TIMINGS}
    keeper = start_worker("keeper", env, tmp_path)
    leaver_env = {**env, "ORCHESTRATOR_TOOL_MODULES": "benchmarks.agent_calls.bench_tools"}
    leaver = start_worker("leaver", leaver_env, tmp_path)
    try:
        wait_for_workers(redis.Redis.from_url(server.url), [keeper.hostname, leaver.hostname])
        client = Client(redis_url=server.url)
        served = {info.name for info in client.tools()}
        assert {"echo", "add", "lookup_a", "wait_sync"} <= served
        leaver.stop()
        assert leaver.process.returncode == 0  # a warm shutdown: it left on its way out
        served = {info.name for info in client.tools()}
        assert "echo" in served and "wait_sync" not in served
        assert client.workers() == [keeper.hostname]
    finally:
        leaver.stop()
        keeper.stop()
