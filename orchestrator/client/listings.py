"""What a client asks of the live workers: the names they serve and declare, each kept with a
worker's presence in Redis (``orchestrator/state/presence.py``, ``groups.py``)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import redis

from orchestrator.state import groups as group_limits
from orchestrator.state.presence import live_mcp_servers, live_names, live_tools, live_workers
from orchestrator.strategies import BUILTIN_STRATEGIES
from orchestrator.tools import McpServerInfo, ToolInfo


class WorkerListings(ABC):
    """The ``Client`` methods that list what the live workers serve; read through the
    client's ``redis``."""

    @property
    @abstractmethod
    def redis(self) -> redis.Redis:
        """The Redis client of run state (the client's)."""

    def tools(self) -> list[ToolInfo]:
        """The tools the live workers serve (each publishes its own, kept with its presence)."""
        return live_tools(self.redis)

    def mcp_servers(self) -> dict[str, list[McpServerInfo]]:
        """The MCP servers of each live worker that has some (``ORCHESTRATOR_MCP_SERVERS``), by
        hostname: whether each is up, why not, how many tools it serves."""
        return live_mcp_servers(self.redis)

    def endpoints(self) -> list[str]:
        """The endpoints the live workers declare (names only: URLs and keys stay on them)."""
        return live_names(self.redis, "endpoints")

    def agents(self) -> list[str]:
        """The agent functions the live workers register with ``@agent`` (in their
        ``ORCHESTRATOR_MODULES``), which an ``AgentSpec.agent`` may name."""
        return live_names(self.redis, "agents")

    def groups(self) -> dict[str, int]:
        """The concurrency groups the live workers declare, with the limit that holds for each:
        the lowest a live worker declares (``ORCHESTRATOR_GROUP_LIMITS``)."""
        return group_limits.live_limits(self.redis)

    def strategies(self) -> list[str]:
        """The strategies a run may name: the built-ins, then those the live workers
        register with ``@strategy`` (``ORCHESTRATOR_MODULES``, ``..._STRATEGY_MODULES``)."""
        return [*BUILTIN_STRATEGIES, *live_names(self.redis, "strategies")]

    def reducers(self) -> list[str]:
        """The ``@reducer`` functions of the live workers' ``ORCHESTRATOR_MODULES``."""
        return live_names(self.redis, "reducers")

    def workers(self) -> list[str]:
        """Host names of the live workers (each refreshes its presence every sweep)."""
        return live_workers(self.redis)
