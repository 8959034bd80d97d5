"""A command in flight when the master fails over is retried on the new master: its connection
asks the sentinels where the master is when it reconnects for the retry, not only when the pool
hands it out (``MasterConnection`` in ``orchestrator/state/sentinel.py``). Real processes: a
primary, two replicas and three sentinels (``tests/deploy/sentinel_set.py``)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from orchestrator.local import redis_server_binary
from orchestrator.state.sentinel import new_sentinel_client
from tests.deploy.sentinel_set import MASTER_NAME, SentinelSet
from tests.helpers import wait_for

# Far longer than a command's retries last (about half a minute): the thread has then ended,
# with the reply or with the error the retries ended on.
JOIN_S = 180


@pytest.fixture
def sentinels() -> Iterator[SentinelSet]:
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server with sentinel support")
    redis_server_binary()
    made = SentinelSet()
    yield made
    made.stop()


def in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """``call()`` in a thread of its own; the dict gets its ``reply`` or its ``error``."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["reply"] = call()
        except Exception as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def blocked_on(sentinels: SentinelSet, port: int) -> bool:
    return bool(sentinels.server(port).info("clients")["blocked_clients"] == 1)


def finished(thread: threading.Thread, outcome: dict[str, Any]) -> Any:
    thread.join(JOIN_S)
    assert not thread.is_alive(), "the command neither answered nor failed"
    assert "error" not in outcome, (
        f"the retried command failed: {outcome.get('error')!r}: {outcome.get('error')}"
    )
    return outcome["reply"]


def test_a_read_in_flight_when_the_master_dies_is_answered_by_the_new_master(
    sentinels: SentinelSet,
) -> None:
    client = new_sentinel_client(sentinels.url, MASTER_NAME, None, 4)
    thread, outcome = in_thread(lambda: client.xread({"stream": "0-0"}, block=0))
    old = sentinels.master_port()
    wait_for(lambda: blocked_on(sentinels, old), "the read waits on the master")
    sentinels.kill_master()
    new = sentinels.wait_for_new_master(old)
    # Written on the new master only: the read that answers with it was retried there.
    sentinels.server(new).xadd("stream", {"e": "on the new master"})
    [(_, [(_, fields)])] = finished(thread, outcome)
    assert fields == {b"e": b"on the new master"}


def test_a_write_in_flight_when_the_master_is_demoted_alive_goes_to_the_new_master(
    sentinels: SentinelSet,
) -> None:
    client = new_sentinel_client(sentinels.url, MASTER_NAME, None, 4)
    thread, outcome = in_thread(lambda: client.blmove("src", "dst", 0, "RIGHT", "LEFT"))
    old = sentinels.master_port()
    wait_for(lambda: blocked_on(sentinels, old), "the move waits on the master")
    # A failover that leaves the old master alive: the sentinels then make it a replica of
    # the new one, dropping its clients; the move's retry must not go back to it.
    assert sentinels.sentinel(sentinels.sentinel_ports[0]).execute_command(
        "SENTINEL", "FAILOVER", MASTER_NAME
    )
    new = sentinels.wait_for_new_master(old)
    sentinels.server(new).lpush("src", "moved")
    assert finished(thread, outcome) == b"moved"
    assert sentinels.server(new).lrange("dst", 0, -1) == [b"moved"]
