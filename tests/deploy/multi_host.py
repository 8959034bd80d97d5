"""A multi-host topology for tests and benchmarks: Redis on one host (network namespace),
one worker per worker host, a client host that submits map-reduces; and the signals the tests
wait for (which host runs which member).

The process using it stays in the root namespace and watches the runs through the Redis
server's unix socket (``tests/deploy/netns.py``); every host talks over the bridge.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.local import LocalWorker, wait_for_workers
from orchestrator.state.events import AgentEnd, AgentStart, Event, follow
from tests.deploy.netns import NamespacedRedis, Network, libfaketime, skewed_clock_env
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
WORKER_HOSTS = ("w1", "w2", "w3")
SLOTS_PER_HOST = 2


@dataclass
class ClientRun:
    """A map-reduce submitted by the client host: its run id, and its result when it ends."""

    process: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    run_id: str = ""

    def line(self, timeout_s: float) -> dict[str, Any]:
        try:
            return dict(json.loads(self.lines.get(timeout=timeout_s)))
        except queue.Empty:
            raise AssertionError(f"the client printed nothing in {timeout_s} s") from None

    def result(self, timeout_s: float = 180) -> dict[str, Any]:
        got = self.line(timeout_s)
        self.process.wait(30)
        return got


@dataclass
class Hosts:
    """The running topology: the network, Redis on its host and one worker per worker host."""

    network: Network
    redis: NamespacedRedis
    workers: dict[str, LocalWorker]
    log_dir: Path
    # The client's settings too: it schedules a new run's first sweep (its ``sweep_s``).
    env: Mapping[str, str] = field(default_factory=dict)

    def host_of(self, worker: str | None) -> str:
        """The host whose worker process wrote ``worker`` (``host:pid``) in an event."""
        pid = int((worker or ":0").rsplit(":", 1)[1])
        return next(host for host, w in self.workers.items() if w.pid == pid)

    def events(self, run_id: str) -> list[Event]:
        return list(follow(self.redis.client, run_id, follow=False))

    def submit(self, items: int, latency_ms: int, max_concurrent: int) -> ClientRun:
        """Submit a map-reduce from the client host; returns once it is submitted."""
        process = subprocess.Popen(
            [*self.network.prefix("client"), sys.executable, "-m", "tests.deploy.netns_client"],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        run = ClientRun(process)
        threading.Thread(target=_read_lines, args=(process, run.lines), daemon=True).start()
        assert process.stdin is not None
        spec = {
            "redis_url": self.redis.url,
            "items": items,
            "latency_ms": latency_ms,
            "max_concurrent": max_concurrent,
            "timeout_s": 180,
        }
        process.stdin.write(json.dumps(spec))
        process.stdin.close()
        run.run_id = str(run.line(60)["run_id"])
        return run

    def drop_connections(self, host: str) -> int:
        """Close every connection ``host`` has to Redis, on Redis's side (as Redis's TCP
        keepalive, or a firewall forgetting the flows, does to a host gone for long); returns
        how many were closed."""
        address = self.network.hosts[host].address
        ids = [
            c["id"] for c in self.redis.client.client_list() if c["addr"].startswith(f"{address}:")
        ]
        for client_id in ids:
            self.redis.client.client_kill_filter(_id=client_id)
        return len(ids)

    def log(self, host: str) -> str:
        return (self.log_dir / f"{host}.log").read_text(errors="replace")


def _read_lines(process: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line)


@contextmanager
def running_hosts(
    log_dir: Path,
    env: Mapping[str, str],
    skews_s: Mapping[str, int] | None = None,
    slots: int = SLOTS_PER_HOST,
) -> Iterator[Hosts]:
    """Hosts ``redis``, ``w1``-``w3`` (a worker each, ``slots`` slots, ``env`` added)
    and ``client``; worker hosts in ``skews_s`` run with their wall clock that many seconds
    off (when libfaketime is installed). Everything is stopped and removed at the end."""
    network = Network(["redis", *WORKER_HOSTS, "client"])
    started: list[LocalWorker] = []
    server: NamespacedRedis | None = None
    faketime = libfaketime()
    try:
        server = NamespacedRedis(network, "redis")
        for host in WORKER_HOSTS:
            skew_s = (skews_s or {}).get(host)
            skew = skewed_clock_env(faketime, skew_s) if faketime and skew_s else {}
            started.append(
                LocalWorker(
                    host,
                    {"ORCHESTRATOR_REDIS_URL": server.url, **env, **skew},
                    concurrency=slots,
                    log_path=log_dir / f"{host}.log",
                    command_prefix=network.prefix(host),
                )
            )
        wait_for_workers(server.client, [w.hostname for w in started], timeout_s=90)
        workers = dict(zip(WORKER_HOSTS, started, strict=True))
        yield Hosts(network, server, workers, log_dir, env)
    finally:
        for worker in started:
            worker.stop()
        if server is not None:
            server.stop()
        network.close()


def starts_by_index(events: list[Event]) -> dict[int | None, list[AgentStart]]:
    found: dict[int | None, list[AgentStart]] = {}
    for event in events:
        if isinstance(event, AgentStart):
            found.setdefault(event.index, []).append(event)
    return found


def cut_mid_run(hosts: Hosts, run: ClientRun, victim: str) -> set[int]:
    """Wait until the victim runs members of ``run`` (and every host has started some), cut
    it off, and return the members it was running then."""
    held = victim_running(hosts, run, victim)
    hosts.network.cut(victim)
    return held


def victim_running(hosts: Hosts, run: ClientRun, victim: str) -> set[int]:
    """Wait until the victim runs members of ``run`` and every host has started some; return
    the members the victim is running."""
    held: set[int] = set()

    def victim_runs_members() -> bool:
        events = hosts.events(run.run_id)
        ended = {e.index for e in events if isinstance(e, AgentEnd)}
        starts = starts_by_index(events)
        on_hosts = {hosts.host_of(s.worker) for index in starts for s in starts[index]}
        held.clear()
        held.update(
            index
            for index, found in starts.items()
            if index is not None
            and index not in ended
            and hosts.host_of(found[-1].worker) == victim
        )
        return bool(held) and on_hosts == set(WORKER_HOSTS)

    wait_for(victim_runs_members, "the victim host runs members of the run")
    return held


def run_again_elsewhere(
    hosts: Hosts, run_id: str, held: set[int], victim: str
) -> Callable[[], bool]:
    """True once some member the victim held has started again on another host."""

    def check() -> bool:
        starts = starts_by_index(hosts.events(run_id))
        return any(
            len(starts.get(i, [])) > 1 and hosts.host_of(starts[i][-1].worker) != victim
            for i in held
        )

    return check
