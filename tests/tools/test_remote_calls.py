"""Remote tool calls as their tools worker runs them, messages sent as an agent sends them:
the call lives as long as its agent and holds its slot as long as it runs, its process dies
with its tools worker, a redelivered call says it may have run, an agent of an earlier version
is still served, the agent's start deadline never stops a call a worker took, and the rerun
of a call whose agent's worker died never runs beside it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis
from celery import Celery
from celery.result import AsyncResult

from orchestrator import Client
from orchestrator.config.celery_config import celery_config
from orchestrator.config.settings import Settings
from orchestrator.local import LocalRedis, LocalWorker, wait_for_workers
from orchestrator.state.keys import semaphore_key
from tests.conftest import FAST_TIMINGS
from tests.helpers import environment, wait_for
from tests.tools.test_tools import agent, calls, tool_messages
from workers.limits import SharedLimit
from workers.tools.remote import (
    CALL_TOOL_TASK,
    CeleryRemoteCall,
    caller_key,
    claim_start,
    ticket_key,
)

LEASE_S = float(FAST_TIMINGS["ORCHESTRATOR_LEASE_S"])


def celery_app() -> Celery:
    """A client app of the Redis in the environment (as an agent worker sends with)."""
    app = Celery("test-remote-calls", set_as_current=False)
    app.conf.update(celery_config(Settings()))
    return app


@pytest.fixture
def app(worker_env: dict[str, str], workers: list[LocalWorker]) -> Celery:
    return celery_app()


@pytest.fixture
def state(worker_env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(worker_env["ORCHESTRATOR_REDIS_URL"])


def send(
    app: Celery, state: redis.Redis, name: str, arguments: dict[str, Any], **kwargs: Any
) -> tuple[str, AsyncResult]:
    """Send a call as an agent does: its ticket and a live caller heartbeat (kept by the test,
    which may end it to stand for the agent's death)."""
    ticket = f"tool:{name}:{uuid4().hex}"
    state.set(caller_key(ticket), "1", ex=120)
    kwargs = {"key": "r/a/c", "ticket": ticket, "limit_s": 60.0, "caller": True, **kwargs}
    return ticket, app.send_task(
        CALL_TOOL_TASK, args=(name, arguments), kwargs=kwargs, queue="tools"
    )


def redis_ms(state: redis.Redis) -> float:
    seconds, micros = state.time()
    return seconds * 1000 + micros / 1000


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_remote_call_holds_its_slot_on_its_tools_worker_for_as_long_as_it_runs(
    app: Celery, state: redis.Redis
) -> None:
    limit = SharedLimit(state, f"tool:held:{uuid4().hex}", 1, None, LEASE_S)
    token = uuid4().hex
    assert limit.try_acquire(token) == 0
    limit.abandon(token)  # the agent renews it no more (its worker died)
    expiry = state.zscore(semaphore_key(limit.name), token)
    assert expiry is not None
    key = uuid4().hex
    arguments = {"key": key, "seconds": 4 * LEASE_S}
    _, result = send(
        app, state, "remote_slow_mark", arguments, slot={"name": limit.name, "token": token}
    )
    wait_for(lambda: state.smembers(f"test:running:{key}"), "the call started")
    wait_for(lambda: redis_ms(state) > expiry + 100, "the agent's lease ran out")
    assert state.get(f"test:mark:{key}") is None, "the call ended before the lease: no test"
    assert limit.try_acquire(uuid4().hex) > 0, "the slot was free while its call ran"
    assert result.get(timeout=60) == {"content": key}


def test_a_remote_call_whose_agent_is_gone_is_stopped_on_its_tools_worker(
    app: Celery, state: redis.Redis
) -> None:
    key = uuid4().hex
    ticket, result = send(app, state, "remote_slow_mark", {"key": key, "seconds": 30})
    wait_for(lambda: state.smembers(f"test:running:{key}"), "the call started")
    state.delete(caller_key(ticket))  # its agent's heartbeat ran out
    with pytest.raises(Exception, match="its agent was lost"):
        result.get(timeout=25)
    assert state.get(f"test:mark:{key}") is None


def test_a_redelivered_call_that_had_started_says_it_may_have_done_its_work(
    app: Celery, state: redis.Redis
) -> None:
    ticket, first = send(app, state, "where", {})
    assert "content" in first.get(timeout=30)
    # The same message again, as a broker redelivers it when its first worker was lost.
    kwargs = {"key": "r/a/c", "ticket": ticket, "limit_s": 60.0, "caller": True}
    again = app.send_task(CALL_TOOL_TASK, args=("where", {}), kwargs=kwargs, queue="tools")
    with pytest.raises(Exception, match="may have done part or all of its work"):
        again.get(timeout=30)


def test_a_call_sent_by_an_agent_of_the_previous_version_still_runs(app: Celery) -> None:
    old = app.send_task(CALL_TOOL_TASK, args=("add", {"a": 1, "b": 2}), queue="tools")
    assert old.get(timeout=30) == {"content": "3"}


def test_a_sync_remote_tools_process_speaks_json_on_its_pipes(worker_env: dict[str, str]) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "workers.tools.child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, **worker_env},
        start_new_session=True,  # as the tools worker starts it: its lifeline kills its group
    )
    assert child.stdin is not None and child.stdout is not None
    request = {"name": "add", "arguments": {"a": 2, "b": 3}, "key": "r/a/c"}
    child.stdin.write(json.dumps(request).encode() + b"\n")
    child.stdin.flush()
    reply = child.stdout.read()  # until it writes its result; its stdin stays open meanwhile
    # It ends by itself once it answered: the lifeline (stdin) is closed only after, as the
    # tools worker does, or the child would end killed (its group's end, not a failure).
    assert child.wait(30) == 0
    child.stdin.close()
    assert json.loads(reply) == {"status": "ok", "text": "5"}


# A parent of its own session that starts a tool child in its own group (not a session of the
# child's) on a 30 s call, closes the child's lifeline at once, waits for the child, and then
# says it is still alive.
PARENT = """
import json, subprocess, sys
child = subprocess.Popen([sys.executable, "-m", "workers.tools.child"], stdin=subprocess.PIPE)
call = {"name": "sync_sleep", "arguments": {"seconds": 30}, "key": "r/m/c"}
child.stdin.write(json.dumps(call).encode() + b"\\n")
child.stdin.close()
child.wait()
print("parent alive", child.returncode, flush=True)
"""


def test_a_tool_child_outside_a_session_of_its_own_kills_only_itself() -> None:
    env = {**os.environ, "ORCHESTRATOR_TOOL_MODULES": "tests.registered.tools_demo"}
    parent = subprocess.run(
        [sys.executable, "-c", PARENT], capture_output=True, timeout=60, env=env,
        start_new_session=True,
    )  # fmt: skip
    assert parent.stdout == b"parent alive -9\n", "the lifeline killed the child's whole group"


@pytest.fixture
def own_redis() -> Iterator[tuple[LocalRedis, dict[str, str]]]:
    server = LocalRedis()
    env = {"ORCHESTRATOR_REDIS_URL": server.url, **FAST_TIMINGS}
    try:
        with environment(env):
            yield server, env
    finally:
        server.stop()


def test_a_sync_remote_tools_process_dies_with_its_tools_worker(
    own_redis: tuple[LocalRedis, dict[str, str]], tmp_path: Path
) -> None:
    server, env = own_redis
    state = redis.Redis.from_url(server.url)
    worker = LocalWorker("tools", env, queues=("tools",), concurrency=2, log_path=tmp_path / "w")
    try:
        wait_for_workers(state, [worker.hostname])
        key = uuid4().hex
        send(celery_app(), state, "remote_slow_mark", {"key": key, "seconds": 60})
        (pid,) = wait_for(lambda: state.smembers(f"test:running:{key}"), "the call started")
        worker.kill()
        wait_for(lambda: not alive(int(pid)), "the tool's process ended", timeout_s=20)
        assert state.get(f"test:mark:{key}") is None
    finally:
        worker.kill()


def test_past_the_start_deadline_an_agent_waits_for_a_call_a_worker_took(
    own_redis: tuple[LocalRedis, dict[str, str]],
) -> None:
    server, _ = own_redis
    state = redis.Redis.from_url(server.url)
    app = celery_app()
    call = CeleryRemoteCall(app, state, "where", {}, "r/a/c", 30.0, 0.0, LEASE_S)
    ticket = call._ticket
    # A tools worker took it at the deadline: its mark is in, its STARTED state not yet.
    assert claim_start(state, ticket) == "started"

    async def agent_waits() -> str:
        waiting = asyncio.ensure_future(call.outcome())
        await asyncio.sleep(0)  # its first look: PENDING, past its deadline
        await asyncio.sleep(0)
        assert state.get(ticket_key(ticket)) == b"started", "it asked the worker to stop"
        app.backend.store_result(ticket, {"content": "done"}, "SUCCESS")
        return await waiting

    assert asyncio.run(agent_waits()) == "done"


def test_an_agent_workers_death_never_lets_the_rerun_of_its_remote_call_run_beside_it(
    own_redis: tuple[LocalRedis, dict[str, str]], tmp_path: Path
) -> None:
    server, env = own_redis
    state = redis.Redis.from_url(server.url)
    agents = ("coordinator", "agents", "learner")
    tools = LocalWorker("tools", env, queues=("tools",), concurrency=4, log_path=tmp_path / "t")
    first = LocalWorker("a1", env, queues=agents, concurrency=2, log_path=tmp_path / "a1")
    second: LocalWorker | None = None
    try:
        wait_for_workers(state, [tools.hostname, first.hostname])
        key = uuid4().hex
        # max_concurrency=1; it runs two leases, so that it outlives its agent's slot lease.
        slow = ("remote_slow_mark", {"key": key, "seconds": 2 * LEASE_S})
        handle = Client(redis_url=server.url).run_agent(
            agent([calls(slow), {"text": "ok"}], ["remote_slow_mark"], timeout_s=60), "go"
        )
        wait_for(lambda: state.smembers(f"test:running:{key}"), "the call started")
        first.kill()  # the agent's worker dies; the call runs on, on its tools worker
        second = LocalWorker("a2", env, queues=agents, concurrency=2, log_path=tmp_path / "a2")
        # The resumed agent runs the call again (at-least-once): never while the first runs.
        result = handle.result(60)
        assert tool_messages(result.context) == [key]
        assert state.get(f"test:overlap:{key}") is None, "two calls ran at once"
    finally:
        for worker in (first, second, tools):
            if worker is not None:
                worker.kill()
