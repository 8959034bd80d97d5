"""A TCP proxy that delays every byte a client sends by ``delay_s`` (settable while it runs):
a slow or distant Redis, as the clients behind it see it. Order is kept on each connection;
replies pass at once."""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time

from orchestrator.local import free_port


class DelayProxy:
    """Listens on a free loopback port and forwards to ``127.0.0.1:target_port``.

    Parameters:
        target_port: the server's port.
    """

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.delay_s = 0.0
        self.forwarded = 0
        """Chunks sent on to the server so far."""
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = [self._listener]
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/0") -> str:
        return f"redis://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._closed = True
        with self._lock:
            for sock in self._sockets:
                _close(sock)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(self._target)
            except OSError:
                return
            with self._lock:
                self._sockets += [client, server]
            pending: queue.Queue[tuple[float, bytes]] = queue.Queue()
            threading.Thread(target=self._read, args=(client, server, pending), daemon=True).start()
            threading.Thread(target=self._send, args=(server, client, pending), daemon=True).start()
            threading.Thread(target=self._relay, args=(server, client), daemon=True).start()

    def _read(self, client: socket.socket, server: socket.socket, pending: queue.Queue) -> None:  # type: ignore[type-arg]
        while data := _recv(client):
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
        _close(server)
        _close(client)

    def _relay(self, server: socket.socket, client: socket.socket) -> None:
        while data := _recv(server):
            try:
                client.sendall(data)
            except OSError:
                break
        _close(client)
        _close(server)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
