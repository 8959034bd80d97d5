"""A TCP proxy that can lose one reply: the client's connection is closed as the command that
asks for it passes (the command still reaches the server and runs), as when a network or a
Redis failover cuts a connection after a write was sent."""

from __future__ import annotations

import socket
import threading

from tests.deploy.tcp_proxy import TcpProxy, recv, shut, start


class DropProxy(TcpProxy):
    """Listens on a free loopback port and forwards to ``127.0.0.1:target_port``.

    ``drop_reply_to(b"LPUSH")`` arms it: the next chunk a client sends that contains the word
    closes that client's connection, goes on to the server, and the server's reply to it is
    read and thrown away; ``reply_dropped`` is set then (the server has run the command)."""

    def __init__(self, target_port: int) -> None:
        self.reply_dropped = threading.Event()
        self._word: bytes | None = None
        super().__init__(target_port)

    def drop_reply_to(self, word: bytes) -> None:
        with self._lock:
            self._word = word.upper()

    def connected(self, client: socket.socket, server: socket.socket) -> None:
        dropping = threading.Event()
        start(self._up, client, server, dropping)
        start(self._down, server, client, dropping)

    def _up(self, client: socket.socket, server: socket.socket, dropping: threading.Event) -> None:
        while data := recv(client):
            with self._lock:
                drop = self._word is not None and self._word in data.upper()
                if drop:
                    self._word = None
            if drop:
                dropping.set()
                shut(client)
            try:
                server.sendall(data)
            except OSError:
                return
            if drop:
                return
        shut(server)  # the client closed: so does the proxy, towards the server

    def _down(
        self, server: socket.socket, client: socket.socket, dropping: threading.Event
    ) -> None:
        while data := recv(server):
            if dropping.is_set():
                self.reply_dropped.set()
                return
            try:
                client.sendall(data)
            except OSError:
                return
        shut(client)
