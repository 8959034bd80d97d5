"""The MCP servers of one worker process (``ORCHESTRATOR_MCP_SERVERS``), kept on an event loop
of their own.

Each server is an ``McpLink`` (``mcp_link.py``), kept connected by a task of that loop: a stdio
server is a child process of this worker process, started here and started again when it dies;
an HTTP server is a session this process holds. Tool calls come from the agents' own loops (one
per model turn, in their threads) and are handed to this loop; cancelling the caller cancels
the call here, and so on the server.

A process forked after the servers were started (a prefork pool child) starts its own on first
use: a child process and a session are not shared across processes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from mcp_types import CallToolResult, Tool

from orchestrator.config.mcp import McpServer
from orchestrator.tools import McpServerInfo
from workers.tools.mcp_link import McpLink

log = logging.getLogger(__name__)

START_WAIT_S = 10.0
"""How long a worker's start waits for its servers' first tool lists (in parallel); a server
that is not up by then is published down and joins when it comes up."""
STOP_WAIT_S = 15.0


class McpServers:
    """The servers, their tools and their state.

    Parameters:
        servers: the configured servers by name.
        environ: the worker's environment (HTTP servers' header values).
    """

    def __init__(self, servers: dict[str, McpServer], environ: Mapping[str, str]) -> None:
        self._configs = servers
        self._environ = environ
        self._links: dict[str, McpLink] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pid = 0
        self._lock = threading.Lock()
        self.revision = 0
        """Grows whenever a server goes up or down (its tools are then published again)."""

    def start(self, wait_s: float = START_WAIT_S) -> None:
        """Start every server (in this process, once), waiting up to ``wait_s`` for each to be
        up or to have failed a first time."""
        with self._lock:
            if self._loop is not None and self._pid == os.getpid():
                return
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="ao-mcp", daemon=True)
            thread.start()
            self._links = {
                name: McpLink(name, config, self._environ, self._changed)
                for name, config in self._configs.items()
            }
            self._loop, self._pid = loop, os.getpid()
            started = asyncio.run_coroutine_threadsafe(self._start_links(), loop)
        try:
            started.result(wait_s)
        except TimeoutError:
            log.warning("MCP servers not up after %g s: published down until they are", wait_s)

    async def _start_links(self) -> None:
        self._tasks = [asyncio.create_task(link.keep()) for link in self._links.values()]
        await asyncio.gather(*(link.settled.wait() for link in self._links.values()))

    def _changed(self) -> None:
        self.revision += 1

    def stop(self) -> None:
        """Close every session and end every stdio server this process started."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return

        async def cancel_all() -> None:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(cancel_all(), loop).result(STOP_WAIT_S)
        except TimeoutError:
            log.warning("MCP servers still closing after %g s", STOP_WAIT_S)
        loop.call_soon_threadsafe(loop.stop)

    def link(self, server: str) -> McpLink | None:
        """The server ``server`` (started in this process first, if need be)."""
        if server not in self._configs:
            return None
        self.start()
        return self._links.get(server)

    def tools(self) -> list[tuple[str, Tool]]:
        """(server, tool) for every tool the servers listed last: a server that went down keeps
        its tools, whose calls then say that it is down."""
        return [(name, tool) for name, link in sorted(self._links.items()) for tool in link.tools]

    def infos(self) -> list[McpServerInfo]:
        """The state of every server, by name."""
        return [self._links[name].info() for name in sorted(self._links)]

    async def call(
        self, server: str, tool: str, arguments: dict[str, Any], key: str
    ) -> CallToolResult:
        """Call ``tool`` of ``server`` from any event loop; cancelling the caller cancels the
        call on the server."""
        link = self.link(server)
        loop = self._loop
        if link is None or loop is None:
            raise LookupError(f"MCP server {server!r} is not configured on this worker")
        future = asyncio.run_coroutine_threadsafe(link.call(tool, arguments, key), loop)
        return await asyncio.wrap_future(future)
