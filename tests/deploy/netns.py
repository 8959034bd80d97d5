"""Hosts as Linux network namespaces joined by a bridge, for multi-host tests.

Every host is a namespace of its own with one veth link to a bridge, and the bridge lives in a
namespace of its own too (the "switch"), so the root namespace gains nothing: no link, no
address, no route. The addresses (``10.213.X.0/24``) exist only inside these namespaces, so
traffic can only flow between the hosts a test built. Cutting a host off is setting its link's
switch end down, as a pulled cable would.

Names carry the pid of the test process, so that runs on the same machine never collide, and
everything is removed when the test ends, even on failure (``close``, also registered with
``atexit``); namespaces that a killed earlier run left behind are removed when a new network is
built. The test process itself stays in the root namespace: processes are started in a host
with ``ip netns exec`` (``Network.prefix``).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from orchestrator.local import redis_server_binary, stop_processes

NAME_PREFIX = "aons"
SWITCH = "switch"
BRIDGE = "br0"
# The host's end of its link, inside its own namespace.
HOST_LINK = "eth0"
REDIS_PORT = 7000  # inside the Redis host's own namespace: no other server is there
_OWN_NAMESPACE = re.compile(rf"^{NAME_PREFIX}-(\d+)-")
_networks = itertools.count(1)  # several networks of one test process get names of their own


def namespaces_unavailable() -> str | None:
    """Why this machine cannot build namespaces (the reason to skip with), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    probe = f"{NAME_PREFIX}-{os.getpid()}-probe"
    added = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if added.returncode != 0:
        return f"ip netns add failed: {added.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def libfaketime() -> str | None:
    """Debian's multithreaded libfaketime (package ``faketime``), or None if not installed."""
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))
    return str(found[0]) if found else None


def skewed_clock_env(library: str, offset_s: int) -> dict[str, str]:
    """Environment that runs a process with its wall clock ``offset_s`` seconds off.

    The monotonic clock is left alone: libfaketime 0.9.10 (Debian 12) hands a faked monotonic
    deadline straight to the kernel in ``sem_clockwait``, so every timed wait of a Python
    thread would hang. Left alone, only ``time.sleep`` breaks (it fails with EINVAL, libfaketime
    bug #426 with Python 3.11's absolute ``clock_nanosleep``); a healthy worker never calls it
    (redis-py does, backing off in an outage: so a skewed host is never the one cut off).
    """
    return {
        "LD_PRELOAD": library,
        "FAKETIME": f"{offset_s:+d}",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _existing_namespaces() -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in listed.splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphans() -> None:
    """Remove the namespaces of earlier test processes that are gone (killed before their
    cleanup ran), so that a machine running CI again and again does not collect them."""
    for name in _existing_namespaces():
        found = _OWN_NAMESPACE.match(name)
        if found and not _pid_alive(int(found.group(1))):
            _kill_processes_in(name)
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _kill_processes_in(namespace: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
    for pid in pids.stdout.split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


@dataclass(frozen=True)
class Host:
    """One host: its namespace, its address on the bridge and its link's end in the switch."""

    name: str
    namespace: str
    address: str
    switch_link: str


class Network:
    """Hosts ``names`` in namespaces of their own, joined by a bridge in a switch namespace.

    ``subnet`` is the third octet of ``10.213.X.0/24``; host ``i`` (in ``names`` order) gets
    ``10.213.X.(i+1)``.
    """

    def __init__(self, names: Sequence[str], subnet: int | None = None) -> None:
        remove_orphans()
        run = f"{NAME_PREFIX}-{os.getpid()}-{next(_networks)}"
        self._subnet = subnet if subnet is not None else os.getpid() % 250
        self.switch = f"{run}-{SWITCH}"
        self.hosts = {
            name: Host(name, f"{run}-{name}", f"10.213.{self._subnet}.{i + 1}", f"h{i}")
            for i, name in enumerate(names)
        }
        self._created: list[str] = []
        atexit.register(self.close)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _add_namespace(self, namespace: str) -> None:
        _ip("netns", "add", namespace)
        self._created.append(namespace)
        _ip("netns", "exec", namespace, "ip", "link", "set", "lo", "up")

    def _build(self) -> None:
        self._add_namespace(self.switch)
        in_switch = ("netns", "exec", self.switch, "ip", "link")
        _ip(*in_switch, "add", BRIDGE, "type", "bridge")
        _ip(*in_switch, "set", BRIDGE, "up")
        for host in self.hosts.values():
            self._add_namespace(host.namespace)
            # Both ends are created where they belong: nothing passes through the root namespace.
            _ip(*in_switch, "add", host.switch_link, "type", "veth",
                "peer", "name", HOST_LINK, "netns", host.namespace)  # fmt: skip
            _ip(*in_switch, "set", host.switch_link, "master", BRIDGE)
            _ip(*in_switch, "set", host.switch_link, "up")
            in_host = ("netns", "exec", host.namespace, "ip")
            _ip(*in_host, "addr", "add", f"{host.address}/24", "dev", HOST_LINK)
            _ip(*in_host, "link", "set", HOST_LINK, "up")

    def prefix(self, host: str) -> list[str]:
        """The command prefix that runs a command in ``host``."""
        return ["ip", "netns", "exec", self.hosts[host].namespace]

    def cut(self, host: str) -> None:
        """Cut ``host`` off: its link's switch end goes down (a pulled cable)."""
        self._set_link(host, "down")

    def restore(self, host: str) -> None:
        """Plug ``host`` back in."""
        self._set_link(host, "up")

    def _set_link(self, host: str, state: str) -> None:
        _ip("netns", "exec", self.switch, "ip", "link", "set", self.hosts[host].switch_link, state)

    def close(self) -> None:
        """Stop every process left in these namespaces and delete them (their links go with
        them). Safe to call twice."""
        for namespace in reversed(self._created):
            _kill_processes_in(namespace)
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        self._created.clear()


class NamespacedRedis:
    """A redis-server in ``host`` bound to its address on the bridge, so that other hosts
    reach it over the network. It also listens on a unix socket in a private directory: the
    test process (in the root namespace) watches the run through it, without a network
    path of its own into the namespaces."""

    def __init__(self, network: Network, host: str) -> None:
        self.address = network.hosts[host].address
        self.url = f"redis://{self.address}:{REDIS_PORT}/0"
        self._dir = tempfile.mkdtemp(prefix="ao-netns-redis-")
        self.socket = str(Path(self._dir) / "redis.sock")
        # Protected mode refuses every client but loopback ones when no password is set; the
        # address it binds exists only on the test's bridge, which only its hosts can reach.
        self._process = subprocess.Popen(
            [
                *network.prefix(host), redis_server_binary(),
                "--bind", self.address, "--port", str(REDIS_PORT), "--protected-mode", "no",
                "--unixsocket", self.socket, "--unixsocketperm", "700",
                "--save", "", "--appendonly", "no", "--dir", self._dir,
                "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.client = redis.Redis(unix_socket_path=self.socket)
        deadline = time.monotonic() + 30
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start in {host}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            return bool(self.client.ping())
        except (redis.RedisError, OSError):
            return False

    def stop(self) -> None:
        stop_processes([self._process])
        shutil.rmtree(self._dir, ignore_errors=True)
