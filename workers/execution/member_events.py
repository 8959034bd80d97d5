"""The events of one member's agent loop, written to the run's stream."""

from __future__ import annotations

import logging
from datetime import datetime

from orchestrator.models import ToolCall, Usage
from orchestrator.models.cache_records import CacheDecision
from orchestrator.state.connection import wait_out_refusals
from orchestrator.state.events import Event, ModelTurn, ToolCallEnd, ToolCallStart
from orchestrator.state.store import RunStore
from workers.agent.loop import AgentEvents
from workers.kinds.base import MemberIdentity

log = logging.getLogger(__name__)


class MemberEvents(AgentEvents):
    """Writes each event at once, except the last model turn's: that one is stored with the
    member's output and ``AgentEnd`` in one call, so a one-turn agent costs no extra round
    trip and its turn still comes before its end in the stream."""

    def __init__(self, store: RunStore, run_id: str, identity: MemberIdentity) -> None:
        self._store = store
        self._run_id = run_id
        self._fields = identity.event_fields()
        self.deferred: list[Event] = []

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
        event = ModelTurn(
            run_id=self._run_id,
            turn=turn,
            started_at=started,
            ended_at=ended,
            usage=usage,
            tool_calls=tool_calls,
            error=error,
            cache=cache,
            output_error=output_error,
            **self._fields,
        )
        if final:
            self.deferred.append(event)
        else:
            self._emit(event)

    def tool_start(self, call: ToolCall) -> None:
        event = ToolCallStart(run_id=self._run_id, call_id=call.id, tool=call.name, **self._fields)
        self._emit(event)

    def tool_end(self, call: ToolCall, status: str, error: str | None) -> None:
        event = ToolCallEnd(
            run_id=self._run_id,
            call_id=call.id,
            tool=call.name,
            status=status,
            error=error,
            **self._fields,
        )
        self._emit(event)

    def _emit(self, event: Event) -> None:
        """Write ``event``, waiting while Redis refuses writes (it is full): the member's work
        goes on once Redis has room, its events in order."""
        wait_out_refusals(lambda: self._store.emit(self._run_id, event), self._waiting)

    def _waiting(self, refusal: str) -> None:
        log.warning(
            "run %s: Redis refuses writes (%s); a member's events wait until it has room",
            self._run_id,
            refusal,
        )
