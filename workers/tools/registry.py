"""The tools a worker serves: loaded from modules (and its MCP servers), published in Redis for
clients."""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis

from orchestrator.state import presence
from orchestrator.tools import Tool
from workers.module_scan import collect_named

if TYPE_CHECKING:
    from workers.tools.mcp_tools import McpToolSource


class ToolRegistry:
    """Tools by name.

    Parameters:
        tools: the ``@tool`` tools this worker serves.
        mcp: the tools of its MCP servers (``{server}.{tool}``), if it has any.
    """

    def __init__(self, tools: dict[str, Tool], mcp: McpToolSource | None = None) -> None:
        self.tools = tools
        self.mcp = mcp

    @classmethod
    def from_modules(
        cls, module_names: list[str], mcp: McpToolSource | None = None
    ) -> ToolRegistry:
        """Every ``Tool`` defined at the top level of the named modules (and ``mcp``'s)."""
        return cls(collect_named(module_names, Tool, "tools"), mcp)

    def get(self, name: str) -> Tool | None:
        found = self.tools.get(name)
        if found is None and self.mcp is not None:
            return self.mcp.get(name)
        return found

    @property
    def revision(self) -> int:
        """Grows when what is published changes (an MCP server went up or down)."""
        return self.mcp.revision if self.mcp is not None else 0

    def publish(self, client: redis.Redis, hostname: str, ttl_ms: int) -> None:
        """Tell clients what worker ``hostname`` serves (so unknown tools are refused at
        submit), and the state of its MCP servers, for ``ttl_ms``: its watchdog keeps the keys
        alive with its presence."""
        infos = [self.tools[name].info for name in sorted(self.tools)]
        if self.mcp is not None:
            infos += self.mcp.published()
        presence.publish_tools(client, hostname, infos, ttl_ms)
        presence.publish_mcp(client, hostname, self.mcp.infos() if self.mcp else [], ttl_ms)

    def close(self) -> None:
        """Stop the MCP servers this process started."""
        if self.mcp is not None:
            self.mcp.close()
