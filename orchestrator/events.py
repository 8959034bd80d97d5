"""Run events: typed, JSON, appended to a bounded Redis Stream per run.

Writers hand an event's JSON to the Lua script that changes the state it reports (so an
``AgentEnd`` is in the stream exactly when the output is stored); readers follow the stream
with ``XREAD BLOCK`` from the beginning or from any point.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import redis
from pydantic import BaseModel, Field, TypeAdapter

from orchestrator.keys import RunKeys
from orchestrator.models import Outcome, Usage


class _Event(BaseModel):
    run_id: str
    ts: float = Field(default_factory=time.time)


class RunStart(_Event):
    """The run was submitted."""

    type: Literal["RunStart"] = "RunStart"
    kind: str
    total: int


class AgentStart(_Event):
    """An agent began (``index`` is the item index of a mapper, None for the reducer)."""

    type: Literal["AgentStart"] = "AgentStart"
    name: str
    index: int | None = None


class AgentEnd(_Event):
    """An agent ended, ran or not (skipped and cancelled members end too)."""

    type: Literal["AgentEnd"] = "AgentEnd"
    name: str
    index: int | None = None
    outcome: Outcome
    usage: Usage = Field(default_factory=Usage)
    error: str | None = None


class RunEnd(_Event):
    """The run reached a final state."""

    type: Literal["RunEnd"] = "RunEnd"
    state: str


Event = Annotated[RunStart | AgentStart | AgentEnd | RunEnd, Field(discriminator="type")]
_EVENT = TypeAdapter[Event](Event)


def parse_event(raw: str | bytes) -> Event:
    """An event from its JSON."""
    return _EVENT.validate_json(raw)


def follow(
    client: redis.Redis, run_id: str, follow: bool = True, block_ms: int = 1000
) -> Iterator[Event]:
    """Yield the run's events from the first; with ``follow``, keep waiting until ``RunEnd``."""
    key = RunKeys(run_id).events
    last_id = "0-0"
    while True:
        answer: Any = client.xread({key: last_id}, count=500, block=block_ms if follow else None)
        if not answer:
            if not follow:
                return
            continue
        for entry_id, fields in answer[0][1]:
            last_id = entry_id
            event = parse_event(fields[b"e"])
            yield event
            if isinstance(event, RunEnd):
                return
