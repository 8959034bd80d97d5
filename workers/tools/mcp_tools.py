"""The tools of a worker's MCP servers as ``Tool`` objects, served beside the ``@tool`` ones.

Server ``files``'s tool ``read`` is the tool ``files.read``: its description and JSON Schema are
the server's, the model's arguments are checked against that schema before the call, and the
call goes through the same runner as every tool (the agent's ``ToolPolicy``, the server's
``timeout_s`` and ``max_concurrency``, events, records, cancel). A result's text blocks are what
the model reads (its structured content when it has no text); a result the server marks as an
error is an error result. A tool of a server that is down fails with ``McpServerDown``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import jsonschema
from mcp_types import CallToolResult, TextContent
from mcp_types import Tool as McpSpec
from pydantic import BaseModel, ConfigDict

from orchestrator.config.mcp import McpServer
from orchestrator.tools import McpServerInfo, Tool, ToolArgumentsError, ToolInfo, idempotency_key
from workers.tools.mcp_link import McpLink
from workers.tools.mcp_servers import McpServers


class McpToolError(Exception):
    """The MCP server answered that the tool failed (``isError``); the text is its answer."""


class _AnyArguments(BaseModel):
    """Arguments are checked against the server's JSON Schema instead."""

    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True)
class McpTool(Tool):
    """A tool of an MCP server (``info.name`` is ``{server}.{tool}``)."""

    server: str = ""
    remote_name: str = ""

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """``arguments`` when they fit the tool's JSON Schema, else ``ToolArgumentsError``."""
        schema = self.info.parameters
        if not schema:
            return dict(arguments)
        validator = jsonschema.validators.validator_for(schema)
        try:
            validator.check_schema(schema)
        except jsonschema.SchemaError:
            return dict(arguments)  # the server's schema cannot check anything: it decides
        problems = sorted(validator(schema).iter_errors(arguments), key=lambda e: list(e.path))
        if problems:
            listed = "; ".join(
                f"{'.'.join(str(p) for p in problem.path) or 'arguments'}: {problem.message}"
                for problem in problems
            )
            raise ToolArgumentsError(f"invalid arguments for {self.name}: {listed}")
        return dict(arguments)

    def wire_arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        return dict(arguments)


class McpToolSource:
    """The MCP tools of one worker, looked up by name as its registry's own tools are.

    Parameters:
        servers: the worker's servers (started).
        configs: their configuration (each server's ``timeout_s`` and ``max_concurrency``).
    """

    def __init__(self, servers: McpServers, configs: dict[str, McpServer]) -> None:
        self._servers = servers
        self._configs = configs
        self._made: dict[tuple[str, str], tuple[McpSpec, McpTool]] = {}

    @property
    def revision(self) -> int:
        return self._servers.revision

    def get(self, name: str) -> Tool | None:
        """The tool ``{server}.{tool}``: while its server is down, one whose calls say so."""
        server, dot, remote_name = name.partition(".")
        link = self._servers.link(server) if dot else None
        if link is None:
            return None
        for spec in link.tools:
            if spec.name == remote_name:
                return self._tool(link, spec)
        if link.info().up:
            return None  # the server answers and has no such tool
        return self._tool(link, McpSpec(name=remote_name, input_schema={}))

    def published(self) -> list[ToolInfo]:
        """What clients are told of the servers' tools (those of a server that is down, too:
        runs may name them, and their calls then say that it is down)."""
        return [self._tool(self._link(server), spec).info for server, spec in self._servers.tools()]

    def infos(self) -> list[McpServerInfo]:
        return self._servers.infos()

    def close(self) -> None:
        self._servers.stop()

    def _link(self, server: str) -> McpLink:
        link = self._servers.link(server)
        assert link is not None
        return link

    def _tool(self, link: McpLink, spec: McpSpec) -> McpTool:
        made = self._made.get((link.name, spec.name))
        if made is not None and made[0] is spec:
            return made[1]
        tool = _make(self._servers, link, spec, self._configs[link.name])
        self._made[(link.name, spec.name)] = (spec, tool)
        return tool


def _make(servers: McpServers, link: McpLink, spec: McpSpec, config: McpServer) -> McpTool:
    async def call(**arguments: Any) -> str:
        result = await servers.call(link.name, spec.name, arguments, idempotency_key())
        return render(result, link)

    info = ToolInfo(
        name=f"{link.name}.{spec.name}",
        description=spec.description or spec.title or "",
        parameters=spec.input_schema,
        max_concurrency=config.max_concurrency,
        timeout_s=config.timeout_s,
    )
    return McpTool(
        function=call,
        info=info,
        arguments=_AnyArguments,
        server=link.name,
        remote_name=spec.name,
    )


def render(result: CallToolResult, link: McpLink) -> str:
    """The text the model reads of ``result``; ``McpToolError`` when the server says the tool
    failed."""
    parts = [
        block.text if isinstance(block, TextContent) else _other_block(block)
        for block in result.content
    ]
    text = "\n".join(parts)
    if not parts and result.structured_content is not None:
        text = json.dumps(result.structured_content)
    text = link.scrub(text)
    if result.is_error:
        raise McpToolError(link.redact(text) or "the tool failed")
    return text


def _other_block(block: Any) -> str:
    """An image, audio or resource block in a line: its kind and type, not its bytes."""
    kind = getattr(block, "type", "content")
    mime = getattr(block, "mime_type", None) or getattr(
        getattr(block, "resource", None), "mime_type", None
    )
    uri = getattr(getattr(block, "resource", None), "uri", None) or getattr(block, "uri", None)
    text = getattr(getattr(block, "resource", None), "text", None)
    if isinstance(text, str):
        return text
    details = ", ".join(str(part) for part in (mime, uri) if part)
    return f"[{kind}{': ' + details if details else ''}]"


def serve_mcp(configs: dict[str, McpServer]) -> McpToolSource | None:
    """The worker's MCP tools, its servers started (None when it has none)."""
    if not configs:
        return None
    servers = McpServers(configs, os.environ)
    servers.start()
    return McpToolSource(servers, configs)
