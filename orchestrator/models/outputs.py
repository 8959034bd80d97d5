"""What an agent run produces and spends: messages, tool calls, usage and its output."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, JsonValue

from orchestrator.models.thinking import ThinkingBlock

Outcome = Literal["ok", "error", "skipped", "cancelled"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "error", "skipped", "cancelled")


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (what every timestamp here uses)."""
    return datetime.now(UTC)


class Usage(BaseModel):
    """Tokens and cost of one or more model calls.

    ``cached_tokens`` is OpenAI's count of input tokens served from its prompt cache;
    ``cache_creation_input_tokens`` and ``cache_read_input_tokens`` are Anthropic's counts of
    input tokens written to and read from its cache. All are part of ``input_tokens``' story,
    reported as the provider reports them.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        """Every token billed: Anthropic's cache reads and writes are beside ``input_tokens``,
        OpenAI's cached tokens inside it."""
        return (
            self.input_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
            + self.output_tokens
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage.model_construct(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            cache_creation_input_tokens=(
                self.cache_creation_input_tokens + other.cache_creation_input_tokens
            ),
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
        )


class ToolCall(BaseModel):
    """A tool call requested by the model."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    """One message of an agent's context. ``thinking``: the reasoning an assistant message
    came with, for the providers that must get it back."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    thinking: list[ThinkingBlock] = Field(default_factory=list)


ModelT = TypeVar("ModelT", bound=BaseModel)


class AgentOutput(BaseModel):
    """What one agent run produced. Agent runs never raise: failures are ``error`` outputs.

    ``data``: the parsed answer of an agent with an ``output_schema`` (or a reducer
    function's return value), None otherwise; ``answer`` is then its compact JSON text."""

    name: str
    answer: str = ""
    data: JsonValue = None
    outcome: Outcome = "ok"
    error: str | None = None
    turns: int = 0
    tool_calls: int = 0
    tokens: Usage = Field(default_factory=Usage)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_ms: float = 0.0
    tools_used: list[str] = Field(default_factory=list)

    def succeeded(self) -> bool:
        """True when the agent produced an answer without error."""
        return self.outcome == "ok" and self.error is None

    def parsed(self, model: type[ModelT]) -> ModelT:
        """``data`` validated into ``model`` (pydantic's ``ValidationError`` when it does not
        fit); ``ValueError`` when there is no data (no schema, or the agent did not succeed)."""
        if self.data is None:
            why = self.error or "the agent had no output_schema"
            raise ValueError(f"{self.name} has no data to parse: {why}")
        return model.model_validate(self.data)

    @classmethod
    def not_run(cls, name: str, outcome: Outcome, reason: str) -> AgentOutput:
        """The output of an agent that never ran (skipped by the budget, or cancelled)."""
        now = utcnow()
        return cls(name=name, outcome=outcome, error=reason, started_at=now, ended_at=now)
