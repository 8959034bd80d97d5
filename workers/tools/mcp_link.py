"""One MCP server kept connected by a worker process, with the official ``mcp`` SDK.

A link connects (starting a stdio server's process, or opening a streamable-HTTP session),
reads the server's tools, and keeps the session: it lists the tools again every ``PROBE_S`` (at
once after a call failed), and when the server does not answer, or its process died, it closes
the session and connects again, waiting longer after each failure (up to ``MAX_BACKOFF_S``).
Meanwhile calls of its tools fail at once with ``McpServerDown``, which says why; the worker's
other tools are not affected. A call that is cancelled (timeout, fail-fast, the run's cancel)
is cancelled on the server too: the SDK sends ``notifications/cancelled``.

Texts that reach a run (errors, results) are redacted of the values a link was configured with
(its headers, its ``env``), should a server echo them.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack, suppress
from typing import Any, cast

import httpx2
from mcp import Client, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, CallToolResult, RequestParamsMeta, Tool

from orchestrator.config.mcp import McpServer, StdioMcpServer
from orchestrator.tools import McpServerInfo
from workers.providers.redaction import REDACTED, redact

log = logging.getLogger(__name__)

PROBE_S = 5.0
PROBE_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 60.0
CLOSE_TIMEOUT_S = 10.0
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
IDEMPOTENCY_META = "agent-orchestrator/idempotency-key"
"""The ``_meta`` entry of a call carrying its idempotency key (``orchestrator.idempotency_key``)."""


class McpServerDown(Exception):
    """The MCP server of a tool does not answer on this worker."""


class McpCallFailed(Exception):
    """The MCP server answered a call with a protocol error."""


class McpLink:
    """One configured server.

    Parameters:
        name: the server's name (its tools are ``{name}.{tool}``).
        config: how to reach it.
        environ: the worker's environment (an HTTP server's header values).
        changed: called, on the link's loop, whenever it goes up or down.
    """

    def __init__(
        self,
        name: str,
        config: McpServer,
        environ: Mapping[str, str],
        changed: Callable[[], None],
    ) -> None:
        self.name = name
        self.config = config
        self._environ = environ
        self._changed = changed
        self.tools: list[Tool] = []
        """The tools of its last listing (kept while it is down, so calls fail clearly)."""
        self.error = "not connected yet"
        self.settled = asyncio.Event()
        """Set once its first connection succeeded or failed."""
        self._client: Client | None = None
        self._suspect = asyncio.Event()
        self._was_up = False
        self._lost = ""
        self._secrets = [value.get_secret_value() for value in self._env().values()]

    def info(self) -> McpServerInfo:
        """The link's state as the worker publishes it."""
        up = self._client is not None
        return McpServerInfo(
            name=self.name,
            transport="stdio" if isinstance(self.config, StdioMcpServer) else "http",
            up=up,
            error="" if up else self.error,
            tools=len(self.tools),
        )

    def redact(self, text: str) -> str:
        """An error's text, without the link's configured values (and cut, as errors are)."""
        return redact(text, self._secrets)

    def scrub(self, text: str) -> str:
        """A result's text, without the link's configured values (and not cut)."""
        for secret in sorted({s for s in self._secrets if s.strip()}, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

    def down(self, reason: str = "") -> McpServerDown:
        """The error of a call that needs this server while it is down."""
        why = reason or self.error or "it is reconnecting"
        return McpServerDown(f"MCP server {self.name!r} is down on this worker: {why}")

    async def keep(self) -> None:
        """Connect and stay connected until cancelled."""
        backoff = FIRST_BACKOFF_S
        while True:
            self._was_up, self._lost = False, ""
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except BaseException as failure:  # anyio raises exception groups too
                cause = self._describe(failure)
                self.error = self._lost or (cause if self._was_up else f"it did not start: {cause}")
            else:
                self.error = self._lost or "its session ended"
            self.settled.set()
            self._changed()
            log.warning("MCP server %s is down: %s", self.name, self.error)
            if self._was_up:  # it had been up: try again soon
                backoff = FIRST_BACKOFF_S
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(CONNECT_TIMEOUT_S) as bound:
            async with AsyncExitStack() as stack:
                client = await stack.enter_async_context(await self._client_for(stack))
                self.tools = await _list_tools(client)
                bound.reschedule(None)
                self._client, self.error, self._was_up = client, "", True
                self._suspect.clear()
                self.settled.set()
                self._changed()
                try:
                    await self._watch(client)
                finally:
                    self._client = None
                    self.error = self._lost or "its session ended"
                    # Closing must not hang the link: a server that stopped answering may
                    # never acknowledge the end of its session.
                    bound.reschedule(loop.time() + CLOSE_TIMEOUT_S)

    async def _client_for(self, stack: AsyncExitStack) -> Client:
        config = self.config
        if isinstance(config, StdioMcpServer):
            env = {name: value.get_secret_value() for name, value in self._env().items()}
            params = StdioServerParameters(
                command=config.command[0], args=config.command[1:], env=env, cwd=config.cwd
            )
            # The worker's own stderr, not Celery's logging proxy (a process needs a file).
            errlog = sys.__stderr__ or sys.stderr
            return Client(stdio_client(params, errlog=errlog), cache=None)
        headers = {}
        for header, variable in config.headers_env.items():
            value = self._environ.get(variable)
            if not value:
                raise McpServerDown(f"set {variable} in the worker's environment")
            headers[header] = value
            # The value, and its credential alone (``Bearer <token>``'s token), wherever echoed.
            self._secrets += [value, *(part for part in value.split() if len(part) >= 8)]
        timeout = httpx2.Timeout(30.0, read=300.0)
        http = await stack.enter_async_context(httpx2.AsyncClient(headers=headers, timeout=timeout))
        return Client(streamable_http_client(config.url, http_client=http), cache=None)

    def _env(self) -> dict[str, Any]:
        return dict(self.config.env) if isinstance(self.config, StdioMcpServer) else {}

    async def _watch(self, client: Client) -> None:
        """Return once the server stops answering (``_lost`` then says how). Its tools are
        listed again every ``PROBE_S`` (at once after a call failed): the probe of a server
        that is alive (MCP's ping is gone from its 2026 protocol), and a list kept current."""
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._suspect.wait(), PROBE_S)
            self._suspect.clear()
            try:
                tools = await asyncio.wait_for(_list_tools(client), PROBE_TIMEOUT_S)
            except TimeoutError:
                self._lost = f"it did not answer within {PROBE_TIMEOUT_S:g} s"
                return
            except Exception as failure:
                self._lost = f"it stopped answering ({self._describe(failure)})"
                return
            if [t.model_dump() for t in tools] != [t.model_dump() for t in self.tools]:
                self.tools = tools
                self._changed()

    async def call(self, tool: str, arguments: dict[str, Any], key: str) -> CallToolResult:
        """Call ``tool`` (its name on the server) on the link's loop."""
        client = self._client
        if client is None:
            raise self.down()
        try:
            meta = cast(RequestParamsMeta, {IDEMPOTENCY_META: key})
            return await client.call_tool(tool, arguments, meta=meta)
        except MCPError as failure:
            self._suspect.set()
            if failure.error.code == CONNECTION_CLOSED:
                raise self.down("its connection closed during a call") from None
            raise McpCallFailed(self.redact(f"MCP server {self.name!r}: {failure}")) from None
        except (OSError, httpx2.HTTPError) as failure:
            self._suspect.set()
            reason = self._describe(failure)
            raise McpServerDown(
                f"MCP server {self.name!r} is down on this worker: {reason}"
            ) from None

    def _describe(self, failure: BaseException) -> str:
        """Why the link is down, in a line (the innermost cause of an exception group)."""
        while isinstance(failure, BaseExceptionGroup) and failure.exceptions:
            failure = failure.exceptions[0]
        if isinstance(failure, McpServerDown):
            return str(failure)
        if isinstance(failure, TimeoutError):
            return f"it did not answer within {CONNECT_TIMEOUT_S:g} s"
        text = str(failure).strip()
        return self.redact(f"{type(failure).__name__}: {text}" if text else type(failure).__name__)


async def _list_tools(client: Client) -> list[Tool]:
    """Every tool the server lists, page after page."""
    tools: list[Tool] = []
    cursor: str | None = None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            return tools
