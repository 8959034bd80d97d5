"""What runs return: one result model per kind of run."""

from __future__ import annotations

from pydantic import BaseModel, Field, JsonValue

from orchestrator.models import AgentOutput, Message, RunRecord, Usage


class MapReduceResult(BaseModel):
    """A map-reduce: mapper outputs in item order and the reduced answer.

    ``reduced_data``: what a reducer function returned, or the parsed answer of a reducer
    agent with an ``output_schema`` (None otherwise, and when the reducer did not succeed);
    ``reduced_answer`` is then its compact JSON text."""

    task: str
    map_outputs: list[AgentOutput]
    reduced_answer: str
    reduced_data: JsonValue = None
    reducer_output: AgentOutput | None = None

    def all_succeeded(self) -> bool:
        """True when every mapper succeeded."""
        return all(output.succeeded() for output in self.map_outputs)


class AgentRunResult(BaseModel):
    """One agent run: its output, the context after it (feed it back to continue) and the
    record of its model and tool calls (``record.calls``)."""

    output: AgentOutput
    context: list[Message]
    session_id: str
    record: RunRecord | None = None


class BranchOutcome(BaseModel):
    """One branch of a parallel run."""

    config_index: int
    loop_id: str
    output: AgentOutput
    new_messages: list[Message] = Field(default_factory=list)
    original_context_len: int

    @property
    def usage(self) -> Usage:
        return self.output.tokens


class ParallelResult(BaseModel):
    """Parallel branches: every outcome in config order and the one the strategy selected.

    ``selected_context`` (the base context plus the selected branch's new messages) continues
    the session: pass it to ``Client.run_agent(context=...)``. ``total_usage`` covers every
    branch and the evaluation. A cancelled run, or one where no branch succeeded, has every
    outcome and no selection (``selected_index`` is None).
    """

    session_id: str
    outcomes: list[BranchOutcome]
    selected_index: int | None
    selected_loop_id: str | None
    selected_messages: list[Message] = Field(default_factory=list)
    selected_context: list[Message] = Field(default_factory=list)
    evaluation_usage: Usage = Field(default_factory=Usage)
    total_usage: Usage

    @property
    def selected(self) -> BranchOutcome | None:
        return None if self.selected_index is None else self.outcomes[self.selected_index]
