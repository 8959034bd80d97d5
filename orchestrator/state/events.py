"""Run events: typed, JSON, appended to a bounded Redis Stream per run.

Writers hand an event's JSON to the Lua script that changes the state it reports (so an
``AgentEnd`` is in the stream exactly when the output is stored); readers follow the stream
with ``XREAD BLOCK`` from the beginning or from any point.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

import redis
from pydantic import BaseModel, Field, TypeAdapter

from orchestrator.models import Outcome, Usage
from orchestrator.models.cache_records import CacheDecision
from orchestrator.state.keys import RunKeys


class _Event(BaseModel):
    run_id: str
    ts: float = Field(default_factory=time.time)


class RunStart(_Event):
    """The run was submitted."""

    type: Literal["RunStart"] = "RunStart"
    kind: str
    total: int


class ParallelLoopStart(_Event):
    """Parallel branches begin; comes before any branch event."""

    type: Literal["ParallelLoopStart"] = "ParallelLoopStart"
    session_id: str
    loop_ids: list[str]


class _AgentEvent(_Event):
    # A mapper has its item ``index``, a branch its ``loop_id``; the final agent of a run
    # (reducer, judge) and a single agent run have neither. A partial reducer of a map-reduce's
    # tree reduce has its ``part``, ``level.chunk`` (``1.3``: level 1, chunk 3).
    name: str
    index: int | None = None
    loop_id: str | None = None
    part: str | None = None


class AgentStart(_AgentEvent):
    """An agent began on ``worker`` (``host:pid`` of the worker process)."""

    type: Literal["AgentStart"] = "AgentStart"
    worker: str | None = None


class ModelTurn(_AgentEvent):
    """One model call of an agent ended."""

    type: Literal["ModelTurn"] = "ModelTurn"
    turn: int
    started_at: datetime | None = None
    ended_at: datetime | None = None
    """When the call ended (a pooled call: before it released its slot); None if it failed."""
    usage: Usage = Field(default_factory=Usage)
    tool_calls: list[str] = Field(default_factory=list)
    error: str | None = None
    cache: CacheDecision | None = None
    """The cache hints the call's request carried (``cache_mode="apply"``), if any."""
    output_error: str | None = None
    """Why the call's answer did not match the agent's ``output_schema`` (the call succeeded;
    the answer is given back to the model while ``output_retries`` allow)."""


class ToolCallStart(_AgentEvent):
    """A tool call requested by the model began."""

    type: Literal["ToolCallStart"] = "ToolCallStart"
    call_id: str
    tool: str


class ToolCallEnd(_AgentEvent):
    """A tool call ended."""

    type: Literal["ToolCallEnd"] = "ToolCallEnd"
    call_id: str
    tool: str
    status: str
    error: str | None = None


class AgentEnd(_AgentEvent):
    """An agent ended, ran or not (skipped and cancelled members end too)."""

    type: Literal["AgentEnd"] = "AgentEnd"
    outcome: Outcome
    usage: Usage = Field(default_factory=Usage)
    error: str | None = None


class ChildRunStart(_AgentEvent):
    """The agent started a child run (``Client.get_run(child_run_id)`` follows it), or its
    redelivered execution adopted the one it had started."""

    type: Literal["ChildRunStart"] = "ChildRunStart"
    child_run_id: str
    kind: str


class ParallelLoopEnd(_Event):
    """The evaluation selected a branch; comes after every branch event."""

    type: Literal["ParallelLoopEnd"] = "ParallelLoopEnd"
    session_id: str
    selected_loop_id: str | None
    selected_config_index: int | None
    evaluation_usage: Usage = Field(default_factory=Usage)


class RunEnd(_Event):
    """The run reached a final state."""

    type: Literal["RunEnd"] = "RunEnd"
    state: str


Event = Annotated[
    RunStart
    | ParallelLoopStart
    | AgentStart
    | ModelTurn
    | ToolCallStart
    | ToolCallEnd
    | AgentEnd
    | ChildRunStart
    | ParallelLoopEnd
    | RunEnd,
    Field(discriminator="type"),
]
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
