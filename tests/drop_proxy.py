"""A TCP proxy that can lose one reply: the client's connection is closed as the command that
asks for it passes (the command still reaches the server and runs), as when a network or a
Redis failover cuts a connection after a write was sent."""

from __future__ import annotations

import contextlib
import socket
import threading

from orchestrator.local import free_port


class DropProxy:
    """Listens on a free loopback port and forwards to ``127.0.0.1:target_port``.

    ``drop_reply_to(b"LPUSH")`` arms it: the next chunk a client sends that contains the word
    closes that client's connection, goes on to the server, and the server's reply to it is
    read and thrown away; ``reply_dropped`` is set then (the server has run the command)."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.reply_dropped = threading.Event()
        self._target = ("127.0.0.1", target_port)
        self._word: bytes | None = None
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = [self._listener]
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def drop_reply_to(self, word: bytes) -> None:
        with self._lock:
            self._word = word.upper()

    def close(self) -> None:
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(self._target)
            except OSError:
                return
            with self._lock:
                self._sockets += [client, server]
            dropping = threading.Event()
            threading.Thread(target=self._up, args=(client, server, dropping), daemon=True).start()
            threading.Thread(
                target=self._down, args=(server, client, dropping), daemon=True
            ).start()

    def _up(self, client: socket.socket, server: socket.socket, dropping: threading.Event) -> None:
        while data := _recv(client):
            with self._lock:
                drop = self._word is not None and self._word in data.upper()
                if drop:
                    self._word = None
            if drop:
                dropping.set()
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)
            try:
                server.sendall(data)
            except OSError:
                return
            if drop:
                return
        _shut(server)  # the client closed: so does the proxy, towards the server

    def _down(
        self, server: socket.socket, client: socket.socket, dropping: threading.Event
    ) -> None:
        while data := _recv(server):
            if dropping.is_set():
                self.reply_dropped.set()
                return
            try:
                client.sendall(data)
            except OSError:
                return
        _shut(client)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""
