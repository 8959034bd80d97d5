"""A private Redis Cluster on this machine: real ``redis-server`` processes in cluster mode on
free loopback ports, joined by ``redis-cli --cluster create`` (used by the Cluster tests and
benchmarks, never on port 6379)."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from orchestrator.local import redis_answers, redis_server_binary, stop_processes

BUS_OFFSET = 10_000
"""A cluster node also listens on its port + 10,000 (the cluster bus), so its port is at most
65,535 - 10,000."""


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port(taken: set[int]) -> int:
    """A free loopback port whose cluster bus port is free too, not in ``taken``."""
    for _ in range(1000):
        port = random.randint(20_000, 65_535 - BUS_OFFSET)
        if port not in taken and _bindable(port) and _bindable(port + BUS_OFFSET):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def cluster_missing() -> str | None:
    """Why a Cluster cannot be started here (no ``redis-server`` or ``redis-cli`` binary), or
    None when it can."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install redis-server)"
    if shutil.which("redis-cli") is None:
        return "redis-cli is not installed (apt-get install redis-tools)"
    return None


class LocalRedisCluster:
    """``primaries`` cluster-mode ``redis-server`` processes (no replicas) sharing the 16,384
    slots, in a private directory; ``url`` names the first node, from which a client finds the
    others.

    Parameters:
        primaries: how many nodes (3 at least: ``redis-cli --cluster create`` refuses fewer).
        start_timeout_s: how long the nodes and the cluster's ``cluster_state:ok`` may take.
    """

    def __init__(self, primaries: int = 3, start_timeout_s: float = 60) -> None:
        self.ports: list[int] = []
        for _ in range(primaries):
            self.ports.append(cluster_port(set(self.ports)))
        self.url = f"redis://127.0.0.1:{self.ports[0]}/0"
        self._dir = tempfile.mkdtemp(prefix="ao-redis-cluster-")
        self._processes: list[subprocess.Popen[bytes]] = []
        try:
            self._start_nodes(start_timeout_s)
            self._create(start_timeout_s)
        except BaseException:
            self.stop()
            raise

    def node_url(self, port: int) -> str:
        return f"redis://127.0.0.1:{port}/0"

    def _start_nodes(self, timeout_s: float) -> None:
        for port in self.ports:
            node_dir = Path(self._dir) / str(port)
            node_dir.mkdir()
            command = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1"]
            command += ["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"]
            command += ["--cluster-config-file", str(node_dir / "nodes.conf")]
            command += ["--save", "", "--appendonly", "no", "--dir", str(node_dir)]
            command += ["--loglevel", "warning"]
            self._processes.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        deadline = time.monotonic() + timeout_s
        for port, process in zip(self.ports, self._processes, strict=True):
            while not redis_answers(self.node_url(port), 0.2):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"cluster node on port {port} did not start")
                time.sleep(0.05)

    def _create(self, timeout_s: float) -> None:
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout_s,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while not self._all_ok():
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not reach cluster_state:ok")
            time.sleep(0.1)

    def _all_ok(self) -> bool:
        """Every node says ``cluster_state:ok`` and knows every other node."""
        for port in self.ports:
            node = redis.Redis.from_url(self.node_url(port))
            try:
                info = node.cluster("INFO")
            finally:
                node.close()
            state = info.get("cluster_state") if isinstance(info, dict) else None
            known = int(info.get("cluster_known_nodes", 0)) if isinstance(info, dict) else 0
            if state != "ok" or known < len(self.ports):
                return False
        return True

    def client(self) -> RedisCluster:
        """A new cluster client (the caller closes it)."""
        return RedisCluster.from_url(self.url)

    def node_of(self, key: str) -> int:
        """The port of the primary that holds ``key``'s slot."""
        with self.client() as client:
            node = client.get_node_from_key(key)
            return int(node.port)

    def stop(self) -> None:
        stop_processes(self._processes)
        shutil.rmtree(self._dir, ignore_errors=True)
