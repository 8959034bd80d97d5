"""Where an agent loop reports its model turns and tool calls (a member writes them to its
run's event stream: ``workers/execution/member_events.py``)."""

from __future__ import annotations

from datetime import datetime

from orchestrator.models import Usage
from orchestrator.models.cache_records import CacheDecision
from workers.tools.runner import ToolEvents


class AgentEvents(ToolEvents):
    """Where the loop reports its turns and tool calls; this base class reports nowhere."""

    def model_turn(
        self,
        turn: int,
        started: datetime,
        usage: Usage,
        tool_calls: list[str],
        error: str | None,
        final: bool,
        ended: datetime | None = None,
        cache: CacheDecision | None = None,
        output_error: str | None = None,
    ) -> None:
        """A model call that began at ``started`` ended (at ``ended``, when it succeeded);
        ``final`` when it is the run's last; ``cache``: the cache hints its request carried;
        ``output_error``: why its answer did not match the agent's output schema."""
