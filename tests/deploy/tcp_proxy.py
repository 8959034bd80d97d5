"""The base of the tests' TCP proxies in front of a Redis (``DelayProxy``, ``DropProxy``): it
listens on a free loopback port, connects each client to ``127.0.0.1:target_port``, and hands
the pair to its subclass, which forwards the bytes as it sees fit."""

from __future__ import annotations

import contextlib
import socket
import threading

from orchestrator.local import free_port


class TcpProxy:
    """Accepts clients from construction on until ``close()``."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = [self._listener]
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/0") -> str:
        """The Redis URL of the server behind the proxy."""
        return f"redis://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        """Stop accepting, and close every connection the proxy holds."""
        self._closed = True
        with self._lock:
            for sock in self._sockets:
                close(sock)

    def connected(self, client: socket.socket, server: socket.socket) -> None:
        """Start forwarding between a new ``client`` and its connection to the server."""
        raise NotImplementedError

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(self._target)
            except OSError:
                return
            with self._lock:
                self._sockets += [client, server]
            self.connected(client, server)


def recv(sock: socket.socket) -> bytes:
    """The next bytes ``sock`` received; ``b""`` once it is closed, or broken."""
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def shut(sock: socket.socket) -> None:
    """Shut ``sock`` down both ways (its peer reads the end), leaving it open."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def close(sock: socket.socket) -> None:
    """Shut ``sock`` down, then close it."""
    shut(sock)
    sock.close()


def start(target: object, *args: object) -> None:
    """Run ``target(*args)`` in a daemon thread."""
    assert callable(target)
    threading.Thread(target=target, args=args, daemon=True).start()
