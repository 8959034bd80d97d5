"""The traces of agent runs the learners read (``RunRecord``), and the checkpoint an agent
run resumes from."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, JsonValue

from orchestrator.models.cache_records import CacheDecision, PromptBlock
from orchestrator.models.outputs import Message, Outcome, Usage
from orchestrator.models.timestamps import UtcTimestamp
from orchestrator.plans.agent_ids import AGENT_ID_PATTERN


class CallRecord(BaseModel):
    """One model call or tool call inside an agent run."""

    kind: Literal["model", "tool"]
    name: str
    started_at: UtcTimestamp
    ended_at: UtcTimestamp | None = None
    usage: Usage = Field(default_factory=Usage)
    status: Literal["ok", "error", "timeout", "cancelled"] = "ok"
    error: str | None = None
    surface: str | None = None
    """The provider's request surface (``openai.chat``, ``anthropic.messages``...)."""
    request_digest: str | None = None
    """sha256 of the provider-native request body (never includes credentials)."""
    prompt: list[PromptBlock] | None = None
    """The request's blocks (hashes and token estimates, never content), for the cache
    learner; None when the agent's ``cache_mode`` is ``off`` or the surface has no blocks."""
    cache: CacheDecision | None = None
    """The cache hints the request carried (``apply`` mode), if any."""


class RunRecord(BaseModel):
    """The trace of one agent run, for learners: every model and tool call in order. Its
    times, and its calls', are aware UTC times within ``orchestrator.models.timestamps``' range."""

    run_id: str
    agent_name: str
    agent_id: str = Field(pattern=AGENT_ID_PATTERN)
    started_at: UtcTimestamp
    ended_at: UtcTimestamp | None = None
    outcome: Outcome = "ok"
    calls: list[CallRecord] = Field(default_factory=list)


class AgentCheckpoint(BaseModel):
    """An agent run's state after its last tool result: enough to resume without repeating
    the model calls and the completed tool calls it already made (the calls of the turn that
    have no result yet run on resume)."""

    started_at: datetime
    new_messages: list[Message]
    usage: Usage
    turns: int
    tool_calls: int
    tools_used: list[str]
    calls: list[CallRecord]
    output_retries: int = 0
    """The retries of answers that did not match the agent's ``output_schema`` so far."""
    state: JsonValue = None
    """What an agent function last gave ``ctx.checkpoint`` (its ``resumed_state`` on resume)."""
