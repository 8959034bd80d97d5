"""The ports private servers get (``orchestrator.local.free_port``): never one the kernel may
hand to an outgoing connection as its source port, which would keep a server from binding it
(or from binding it again after a restart) on a busy machine."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from orchestrator.local import free_port

RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def test_free_ports_are_outside_the_ephemeral_range_and_bindable() -> None:
    if not RANGE.exists():
        pytest.skip(f"{RANGE} is not there to read the ephemeral range from (not Linux)")
    low, high = map(int, RANGE.read_text().split())
    if low <= 10000 and high >= 65535:
        pytest.skip(f"the ephemeral range ({low}-{high}) leaves no port outside it to choose")
    ports = [free_port() for _ in range(200)]
    assert not [port for port in ports if low <= port <= high]
    for port in ports[:20]:
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))
