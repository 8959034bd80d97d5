"""A TCP proxy that delays every byte a client sends by ``delay_s`` (settable while it runs):
a slow or distant Redis, as the clients behind it see it. Order is kept on each connection;
replies pass at once."""

from __future__ import annotations

import queue
import socket
import time

from tests.deploy.tcp_proxy import TcpProxy, close, recv, start


class DelayProxy(TcpProxy):
    """Listens on a free loopback port and forwards to ``127.0.0.1:target_port``.

    Parameters:
        target_port: the server's port.
    """

    def __init__(self, target_port: int) -> None:
        self.delay_s = 0.0
        self.forwarded = 0
        """Chunks sent on to the server so far."""
        super().__init__(target_port)

    def connected(self, client: socket.socket, server: socket.socket) -> None:
        pending: queue.Queue[tuple[float, bytes]] = queue.Queue()
        start(self._read, client, server, pending)
        start(self._send, server, client, pending)
        start(self._relay, server, client)

    def _read(self, client: socket.socket, server: socket.socket, pending: queue.Queue) -> None:  # type: ignore[type-arg]
        while data := recv(client):
            pending.put((time.monotonic(), data))
        pending.put((time.monotonic(), b""))

    def _send(self, server: socket.socket, client: socket.socket, pending: queue.Queue) -> None:  # type: ignore[type-arg]
        while True:
            arrived, data = pending.get()
            if not data:
                break
            # The delay in force when the chunk is sent: raising it holds back what waits.
            wait = arrived + self.delay_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                server.sendall(data)
            except OSError:
                break
            self.forwarded += 1
        close(server)
        close(client)

    def _relay(self, server: socket.socket, client: socket.socket) -> None:
        while data := recv(server):
            try:
                client.sendall(data)
            except OSError:
                break
        close(client)
        close(server)
