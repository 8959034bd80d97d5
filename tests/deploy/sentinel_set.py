"""A real Redis Sentinel set on loopback: one primary, two replicas and three sentinels, all
``redis-server`` processes on free ports, configured in a private directory.

Used by ``tests/operate/test_sentinel.py`` and ``benchmarks/infrastructure/failover.py``. The
sentinels agree on a failure with a quorum of 2 after ``DOWN_AFTER_MS`` without an answer, so a
killed primary is replaced within a few seconds.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import redis

from orchestrator.local import free_port, redis_server_binary, stop_processes
from tests.helpers import wait_for

MASTER_NAME = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
START_TIMEOUT_S = 60.0


def _quoted(value: str) -> str:
    """A value as redis.conf reads it between double quotes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _wait(condition: Callable[[], bool], what: str, timeout_s: float = START_TIMEOUT_S) -> None:
    """Wait for ``condition``; while the set starts or fails over, one that cannot be read
    yet (a server that does not answer) has not happened yet."""

    def holds() -> bool:
        try:
            return condition()
        except (redis.RedisError, OSError):
            return False

    wait_for(holds, f"the sentinel set: {what}", timeout_s, 0.1)


class SentinelSet:
    """One primary, ``replicas`` replicas and ``sentinels`` sentinels, started at once.

    Parameters:
        password: the Redis servers require it (``requirepass``, and ``masterauth`` to
            replicate); the URL carries it.
        sentinel_password: the sentinels require it (their own ``requirepass``); given to
            clients by ``ORCHESTRATOR_SENTINEL_PASSWORD``.
    """

    def __init__(
        self,
        password: str | None = None,
        sentinel_password: str | None = None,
        replicas: int = 2,
        sentinels: int = 3,
    ) -> None:
        self.password = password
        self.sentinel_password = sentinel_password
        self.dir = Path(tempfile.mkdtemp(prefix="ao-sentinel-"))
        self.server_ports = [free_port() for _ in range(1 + replicas)]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.servers: dict[int, subprocess.Popen[bytes]] = {}
        self.sentinels: dict[int, subprocess.Popen[bytes]] = {}
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """kombu's spelling: ``sentinel://[:password@]127.0.0.1:PORT/0``, one per sentinel."""
        credentials = f":{quote(self.password, safe='')}@" if self.password else ""
        return ";".join(
            f"sentinel://{credentials}127.0.0.1:{port}/0" for port in self.sentinel_ports
        )

    def env(self) -> dict[str, str]:
        """The settings that make a client or a worker reach Redis through these sentinels."""
        env = {"ORCHESTRATOR_REDIS_URL": self.url, "ORCHESTRATOR_SENTINEL_MASTER": MASTER_NAME}
        if self.sentinel_password:
            env["ORCHESTRATOR_SENTINEL_PASSWORD"] = self.sentinel_password
        return env

    def _start(self) -> None:
        primary = self.server_ports[0]
        for port in self.server_ports:
            self._start_server(port, replica_of=None if port == primary else primary)
        _wait(lambda: self._replicas_linked(primary), "replication")
        for port in self.sentinel_ports:
            self._start_sentinel(port, primary)
        _wait(self._sentinels_agree, "sentinel discovery")

    def _server_config(self, port: int, replica_of: int | None) -> Path:
        lines = [f"port {port}", "bind 127.0.0.1", 'save ""', "appendonly no"]
        lines.append("repl-diskless-sync-delay 0")  # a rejoining replica syncs at once
        lines += [f"dir {self.dir}", f"dbfilename dump-{port}.rdb", "loglevel warning"]
        lines.append(f"logfile {self.dir / f'redis-{port}.log'}")
        if replica_of is not None:
            lines.append(f"replicaof 127.0.0.1 {replica_of}")
        if self.password:
            lines += [
                f"requirepass {_quoted(self.password)}",
                f"masterauth {_quoted(self.password)}",
            ]
        path = self.dir / f"redis-{port}.conf"
        path.touch(mode=0o600)  # it may hold the password
        path.write_text("\n".join(lines) + "\n")
        return path

    def _start_server(self, port: int, replica_of: int | None) -> None:
        config = self._server_config(port, replica_of)
        self.servers[port] = subprocess.Popen(
            [redis_server_binary(), str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _start_sentinel(self, port: int, primary: int) -> None:
        lines = [f"port {port}", "bind 127.0.0.1", f"dir {self.dir}", "loglevel notice"]
        lines.append(f"logfile {self.dir / f'sentinel-{port}.log'}")
        lines.append(f"sentinel monitor {MASTER_NAME} 127.0.0.1 {primary} 2")
        lines.append(f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}")
        lines.append(f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}")
        lines.append(f"sentinel parallel-syncs {MASTER_NAME} 2")
        if self.password:
            lines.append(f"sentinel auth-pass {MASTER_NAME} {_quoted(self.password)}")
        if self.sentinel_password:
            # Sentinels authenticate to each other with their own password.
            lines.append(f"requirepass {_quoted(self.sentinel_password)}")
            lines.append(f"sentinel sentinel-pass {_quoted(self.sentinel_password)}")
        path = self.dir / f"sentinel-{port}.conf"  # sentinels rewrite their configuration
        path.touch(mode=0o600)
        path.write_text("\n".join(lines) + "\n")
        self.sentinels[port] = subprocess.Popen(
            [redis_server_binary(), str(path), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def server(self, port: int) -> redis.Redis:
        """A direct client of the server on ``port`` (not through the sentinels)."""
        return redis.Redis(
            port=port, password=self.password, socket_timeout=2, socket_connect_timeout=2
        )

    def sentinel(self, port: int) -> redis.Redis:
        """A client of the sentinel on ``port``."""
        return redis.Redis(
            port=port,
            password=self.sentinel_password,
            socket_timeout=2,
            socket_connect_timeout=2,
            decode_responses=True,
        )

    def _replicas_linked(self, primary: int) -> bool:
        info = self.server(primary).info("replication")
        linked = [k for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        online = [k for k in linked if info[k].get("state") == "online"]
        return len(online) == len(self.server_ports) - 1

    def _sentinels_agree(self) -> bool:
        """Every sentinel sees the master, every replica and every other sentinel."""
        for port in self.sentinel_ports:
            state = self.sentinel(port).sentinel_master(MASTER_NAME)
            if int(state["num-slaves"]) != len(self.server_ports) - 1:
                return False
            if int(state["num-other-sentinels"]) != len(self.sentinel_ports) - 1:
                return False
        return True

    def master_port(self, sentinel_port: int | None = None) -> int:
        """The port of the master as a sentinel names it now."""
        port = sentinel_port or self.sentinel_ports[0]
        host_port = self.sentinel(port).sentinel_get_master_addr_by_name(MASTER_NAME)
        return int(host_port[1])

    def kill_master(self) -> int:
        """SIGKILL the master now (it writes nothing more); returns its port."""
        port = self.master_port()
        process = self.servers[port]
        process.send_signal(signal.SIGKILL)
        process.wait()
        return port

    def wait_for_new_master(self, old_port: int, timeout_s: float = START_TIMEOUT_S) -> int:
        """Wait until every live sentinel names a master other than ``old_port`` and that
        server answers as a master; returns its port."""

        def promoted() -> bool:
            ports = {self.master_port(port) for port in self.sentinel_ports}
            if len(ports) != 1 or old_port in ports:
                return False
            (port,) = ports
            return bool(self.server(port).info("replication")["role"] == "master")

        _wait(promoted, "the failover", timeout_s)
        return self.master_port()

    def rejoin(self, port: int) -> None:
        """Start the killed server on ``port`` again, as a replica of the current master, and
        wait until the master and the sentinels count it as one again."""
        master = self.master_port()
        self._start_server(port, replica_of=master)
        _wait(lambda: self._replicas_linked(master), f"the sync ({self._roles()})")
        _wait(self._replicas_up, "the sentinels seeing every replica up")

    def _roles(self) -> str:
        """Each server's role and master, for an error message."""
        roles = []
        for port in self.server_ports:
            try:
                info = self.server(port).info("replication")
                link = info.get("master_link_status", "")
                roles.append(f"{port}: {info['role']} {info.get('master_port', '')} {link}")
            except (redis.RedisError, OSError) as error:
                roles.append(f"{port}: {error}")
        return "; ".join(roles)

    def _replicas_up(self) -> bool:
        for sentinel_port in self.sentinel_ports:
            replicas = self.sentinel(sentinel_port).sentinel_slaves(MASTER_NAME)
            up = [r for r in replicas if not (r["is_sdown"] or r["is_odown"])]
            if len(up) != len(self.server_ports) - 1:
                return False
        return True

    def pause(self, port: int) -> None:
        """SIGSTOP the server on ``port``: it answers nothing (and replicates nothing)."""
        self.servers[port].send_signal(signal.SIGSTOP)

    def resume(self, port: int) -> None:
        self.servers[port].send_signal(signal.SIGCONT)

    def logs(self) -> str:
        """Every log the set wrote."""
        return "".join(path.read_text(errors="replace") for path in self.dir.glob("*.log"))

    def stop(self) -> None:
        """Stop every process (paused ones too) and remove the directory."""
        stop_processes([*self.sentinels.values(), *self.servers.values()], wait_s=10)
        shutil.rmtree(self.dir, ignore_errors=True)
