"""The tools a worker serves: loaded from modules, published in Redis for clients."""

from __future__ import annotations

import redis

from orchestrator.state import presence
from orchestrator.tools import Tool
from workers.module_scan import collect_named


class ToolRegistry:
    """Tools by name.

    Parameters:
        tools: the tools this worker serves.
    """

    def __init__(self, tools: dict[str, Tool]) -> None:
        self.tools = tools

    @classmethod
    def from_modules(cls, module_names: list[str]) -> ToolRegistry:
        """Every ``Tool`` defined at the top level of the named modules."""
        return cls(collect_named(module_names, Tool, "tools"))

    def get(self, name: str) -> Tool | None:
        return self.tools.get(name)

    def publish(self, client: redis.Redis, hostname: str, ttl_ms: int) -> None:
        """Tell clients what worker ``hostname`` serves (so unknown tools are refused at
        submit), for ``ttl_ms``: its watchdog keeps the key alive with its presence."""
        infos = [self.tools[name].info for name in sorted(self.tools)]
        presence.publish_tools(client, hostname, infos, ttl_ms)
