"""Several hosts (network namespaces joined by a bridge): one runs Redis, three run a worker
each, one runs the client. A map-reduce spreads across the worker hosts; a worker host cut
off mid-run has its members run again elsewhere after the lease, and its stale executions
discard their results once it is back; a host cut off for longer than a Redis command waits
comes back and serves again.

The test process stays in the root namespace and watches the runs through the Redis server's
unix socket (no network path into the namespaces); every host talks over the bridge.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from orchestrator.state.events import AgentEnd, AgentStart, Event
from orchestrator.state.keys import member_task_id
from orchestrator.state.presence import live_workers
from tests.conftest import FAST_TIMINGS
from tests.deploy.multi_host import (
    WORKER_HOSTS,
    Hosts,
    cut_mid_run,
    run_again_elsewhere,
    running_hosts,
    starts_by_index,
)
from tests.deploy.netns import Network, libfaketime, namespaces_unavailable
from tests.helpers import wait_for

VICTIM = "w1"
# A Redis command meeting a dropped connection is retried for about this long
# (orchestrator/state/connection.py): past it, a command that has to reconnect fails instead of
# waiting (one on a connection made before the cut just waits: TCP retransmits for minutes).
REDIS_RETRY_WINDOW_S = 30
LONG_CUT_S = REDIS_RETRY_WINDOW_S + 10
# The wall clocks of the hosts that take the victim's members over are five minutes fast and
# five minutes slow (when libfaketime is installed): leases, sweeps and deadlines go by Redis's
# clock only, so a fast host takes nothing over early and a slow one misses no expiry.
SKEWS_S = {"w2": 300, "w3": -300}
FAKETIME = libfaketime()

pytestmark = pytest.mark.skipif(
    (reason := namespaces_unavailable()) is not None,
    reason=f"multi-host tests build network namespaces: {reason}",
)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    env = {
        **FAST_TIMINGS,
        # A message per member: each execution is one task in its worker's log.
        "ORCHESTRATOR_MEMBERS_PER_MESSAGE": "1",
    }
    with running_hosts(tmp_path_factory.mktemp("multi-host-logs"), env, SKEWS_S) as running:
        yield running


def assert_one_output_each(result: dict[str, Any], events: list[Event], items: int) -> None:
    """Every item ends with exactly one output, and the reducer ran once."""
    assert result["state"] == "succeeded"
    assert result["outputs"] == [[f"mapper_{i}", "ok"] for i in range(items)]
    assert result["reducer"] == "ok"
    ends = Counter(e.index for e in events if isinstance(e, AgentEnd))
    assert ends == Counter([*range(items), None]), "one AgentEnd per item and one for the reducer"
    assert len(starts_by_index(events)[None]) == 1, "the reducer ran once"


def test_a_map_reduce_spreads_across_the_worker_hosts(hosts: Hosts) -> None:
    run = hosts.submit(items=12, latency_ms=1500, max_concurrent=6)
    result = run.result()
    events = hosts.events(run.run_id)
    assert_one_output_each(result, events, 12)
    starts = starts_by_index(events)
    assert all(len(starts[i]) == 1 for i in range(12)), "no member ran twice"
    by_host = Counter(hosts.host_of(starts[i][0].worker) for i in range(12))
    assert set(by_host) == set(WORKER_HOSTS), f"every worker host ran members: {by_host}"


def test_the_worker_hosts_clocks_are_skewed(hosts: Hosts) -> None:
    """The skew is real: events carry their worker's wall-clock time, Redis's clock is the
    reference (the other tests then show it changes nothing)."""
    if FAKETIME is None:
        pytest.skip("libfaketime is not installed (Debian package faketime): clocks not skewed")
    run = hosts.submit(items=6, latency_ms=1500, max_concurrent=6)
    run.result()
    seconds, micros = hosts.redis.client.time()
    redis_now = int(seconds) + int(micros) / 1e6
    offsets: dict[str, list[float]] = {}
    for event in hosts.events(run.run_id):
        if isinstance(event, AgentStart) and event.index is not None:
            offsets.setdefault(hosts.host_of(event.worker), []).append(event.ts - redis_now)
    for host, skew in SKEWS_S.items():
        assert host in offsets, f"{host} ran members"
        # Within a minute of the skew: the members started seconds before Redis was asked.
        assert all(abs(offset - skew) < 60 for offset in offsets[host]), (host, offsets[host])


def _assert_only_the_victims_members_ran_again(hosts: Hosts, events: list[Event]) -> None:
    """No premature takeover: a member the (clock-skewed) hosts left alone ran once."""
    for index, found in starts_by_index(events).items():
        if hosts.host_of(found[0].worker) != VICTIM:
            assert len(found) == 1, f"member {index} was taken over from a live host"


def _assert_stale_executions_discarded(hosts: Hosts, run_id: str, events: list[Event]) -> None:
    """Each member the victim ran and another host ran again: the victim's execution, back on
    the network, ended its delivery without storing a result. Most found their lease lost
    (``ignored``); one whose claim the cut fell on (the claim ran in Redis, its reply was lost
    and redis-py sent it again) found the member done and returned the stored output without
    running (``succeeded``). Either way the run holds one output per member, checked once the
    victim's deliveries have ended."""
    starts = starts_by_index(events)
    # A member the victim started and another host started again. The victim, back on the
    # network, may also take a message of one of its members published again meanwhile (a new
    # delivery, as any host may): that execution is a valid one, not the stale one.
    taken_over = [
        index
        for index, found in starts.items()
        if index is not None
        and hosts.host_of(found[0].worker) == VICTIM
        and any(hosts.host_of(s.worker) != VICTIM for s in found[1:])
    ]
    assert taken_over, "the victim's members ran again on the other hosts"
    for index in taken_over:
        task = f"run_member[{member_task_id(run_id, index)}]"
        wait_for(
            lambda task=task: any(
                f"{task} {ending}" in hosts.log(VICTIM) for ending in ("ignored", "succeeded")
            ),
            f"the victim's stale execution of member {index} ended",
        )
    ends = Counter(e.index for e in hosts.events(run_id) if isinstance(e, AgentEnd))
    assert all(ends[index] == 1 for index in taken_over), f"one output each: {ends}"


def test_a_cut_off_worker_host_s_members_run_again_and_its_stale_results_are_dropped(
    hosts: Hosts,
) -> None:
    # Members of 4 s: the victim surely holds running ones when its link goes down.
    run = hosts.submit(items=12, latency_ms=4000, max_concurrent=6)
    held: set[int] = set()
    try:
        held = cut_mid_run(hosts, run, VICTIM)
        # Longer than the lease (its expiry is what lets another host take a member over),
        # shorter than a Redis command's retries: the victim's commands are still waiting.
        wait_for(
            run_again_elsewhere(hosts, run.run_id, held, VICTIM), "a member ran again elsewhere"
        )
    finally:
        hosts.network.restore(VICTIM)
    result = run.result()
    events = hosts.events(run.run_id)
    assert_one_output_each(result, events, 12)
    _assert_only_the_victims_members_ran_again(hosts, events)
    _assert_stale_executions_discarded(hosts, run.run_id, events)


def test_a_host_cut_off_past_the_redis_retry_window_comes_back_and_serves(hosts: Hosts) -> None:
    run = hosts.submit(items=12, latency_ms=4000, max_concurrent=6)
    try:
        cut_mid_run(hosts, run, VICTIM)
        cut_at = time.monotonic()
        # The run finishes on the two hosts left while the victim is still cut off.
        result = run.result()
        # Keep the link down past the window in which the victim's Redis commands are retried,
        # so that they fail rather than wait (the length of the fault, not a check of timing).
        time.sleep(max(0.0, LONG_CUT_S - (time.monotonic() - cut_at)))
        # And Redis gives up on the host's connections: back on the network, the victim finds
        # them gone (reset) and must reconnect its broker consumer and its run-store clients.
        assert hosts.drop_connections(VICTIM) > 0
    finally:
        hosts.network.restore(VICTIM)
    events = hosts.events(run.run_id)
    assert_one_output_each(result, events, 12)
    _assert_only_the_victims_members_ran_again(hosts, events)
    _assert_stale_executions_discarded(hosts, run.run_id, events)

    victim = hosts.workers[VICTIM]
    assert victim.process.poll() is None, "the victim's worker process survived the cut"
    wait_for(lambda: victim.hostname in live_workers(hosts.redis.client), "the victim rejoined")

    # It takes work again: runs are submitted until one has a member on the victim.
    def victim_serves() -> bool:
        again = hosts.submit(items=6, latency_ms=1500, max_concurrent=6)
        result = again.result()
        events = hosts.events(again.run_id)
        assert_one_output_each(result, events, 6)
        starts = starts_by_index(events)
        return any(hosts.host_of(s.worker) == VICTIM for i in range(6) for s in starts[i])

    wait_for(victim_serves, "the victim ran members again", timeout_s=180)


def test_the_host_with_the_slow_clock_alone_takes_over_expired_leases(hosts: Hosts) -> None:
    """No missed expiry: the other two hosts freeze while they run members (SIGSTOP), and the
    host whose clock is five minutes slow, the only one left, takes every member over once its
    lease has expired by Redis's clock."""
    if FAKETIME is None:
        pytest.skip("libfaketime is not installed (Debian package faketime): clocks not skewed")
    slow = min(SKEWS_S, key=lambda host: SKEWS_S[host])
    frozen = [host for host in WORKER_HOSTS if host != slow]
    run = hosts.submit(items=6, latency_ms=3000, max_concurrent=6)
    held: dict[str, set[int]] = {}

    def every_host_runs_members() -> bool:
        events = hosts.events(run.run_id)
        ended = {e.index for e in events if isinstance(e, AgentEnd)}
        held.clear()
        for index, found in starts_by_index(events).items():
            if index is not None and index not in ended:
                held.setdefault(hosts.host_of(found[-1].worker), set()).add(index)
        return all(held.get(host) for host in WORKER_HOSTS)

    wait_for(every_host_runs_members, "every host runs members")
    for host in frozen:
        os.kill(hosts.workers[host].pid, signal.SIGSTOP)
    try:
        taken = {i for host in frozen for i in held[host]}
        wait_for(
            lambda: all(
                len(starts_by_index(hosts.events(run.run_id)).get(i, [])) > 1 for i in taken
            ),
            "the slow host took every frozen member over",
        )
    finally:
        for host in frozen:
            os.kill(hosts.workers[host].pid, signal.SIGCONT)
    result = run.result()
    events = hosts.events(run.run_id)
    assert_one_output_each(result, events, 6)
    starts = starts_by_index(events)
    assert all(hosts.host_of(starts[i][-1].worker) == slow for i in taken)


def test_namespaces_are_removed_when_the_network_closes() -> None:
    network = Network(["a", "b"])
    made = [network.switch, *(h.namespace for h in network.hosts.values())]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert all(name in listed for name in made)
    network.close()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(name in listed for name in made)


def _redis_reachable_from_root(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def test_the_root_namespace_has_no_path_to_the_hosts(hosts: Hosts) -> None:
    # The addresses exist only inside the namespaces: from here the Redis host is unreachable,
    # while the workers reach it (they announced themselves over the bridge).
    assert set(live_workers(hosts.redis.client)) >= {w.hostname for w in hosts.workers.values()}
    assert not _redis_reachable_from_root(hosts.redis.url)
