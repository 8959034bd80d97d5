"""An agent run's state between model turns, as it is checkpointed and resumed: its messages,
usage, counts and call records, and the tool results of a turn still running."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.models import AgentCheckpoint, CallRecord, Message, ToolCall, Usage, utcnow
from workers.tools.calls import ToolResult

# A tool result keeps at most this share of the model's context window, counted in UTF-8
# bytes: no token stands for less than a byte, so the result then takes at most this share of
# the window whatever the tokenizer, and the next call fits.
RESULT_SHARE = 0.25


def cut_result(content: str, context_window: int) -> str:
    """``content`` if it fits ``RESULT_SHARE`` of ``context_window``, else its beginning and a
    marker saying how much was cut (the whole within the share)."""
    limit = int(context_window * RESULT_SHARE)
    encoded = content.encode()
    if len(encoded) <= limit:
        return content
    # The marker's length depends on the numbers in it: reserve room for the largest.
    longest = f"\n[cut: {len(content)} of {len(content)} characters removed]"
    kept = encoded[: max(0, limit - len(longest.encode()))].decode("utf-8", errors="ignore")
    removed = len(content) - len(kept)
    return f"{kept}\n[cut: {removed} of {len(content)} characters removed]"


@dataclass
class AgentState:
    """What an agent run has done so far; ``checkpoint()`` is enough to resume it."""

    started_at: datetime
    new_messages: list[Message]
    usage: Usage = field(default_factory=Usage)
    turns: int = 0
    tool_calls: int = 0
    tools_used: list[str] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    output_retries: int = 0
    """Model calls made again for answers that did not match the output schema."""
    _call_ids: dict[int, str] = field(default_factory=dict, repr=False)
    """The call id of each tool record this run made (by object id), to order them."""

    @classmethod
    def resumed(cls, checkpoint: AgentCheckpoint) -> AgentState:
        return cls(
            started_at=checkpoint.started_at,
            new_messages=list(checkpoint.new_messages),
            usage=checkpoint.usage,
            turns=checkpoint.turns,
            tool_calls=checkpoint.tool_calls,
            tools_used=list(checkpoint.tools_used),
            calls=list(checkpoint.calls),
            output_retries=checkpoint.output_retries,
        )

    def checkpoint(self) -> AgentCheckpoint:
        return AgentCheckpoint(
            started_at=self.started_at,
            new_messages=self.new_messages,
            usage=self.usage,
            turns=self.turns,
            tool_calls=self.tool_calls,
            tools_used=self.tools_used,
            calls=self.calls,
            output_retries=self.output_retries,
        )

    def add_result(self, result: ToolResult, context_window: int) -> None:
        """A tool call's result, as the model will read it (cut to fit its window)."""
        self.tool_calls += 1
        if result.call.name not in self.tools_used:
            self.tools_used.append(result.call.name)
        content = cut_result(result.content, context_window)
        record = CallRecord(
            kind="tool",
            name=result.call.name,
            started_at=result.started_at or utcnow(),
            ended_at=result.ended_at,
            status=result.status,
            error=None if result.ok else content,
        )
        self.calls.append(record)
        self._call_ids[id(record)] = result.call.id
        self.new_messages.append(Message(role="tool", content=content, tool_call_id=result.call.id))

    def unanswered(self) -> list[ToolCall]:
        """The calls of the last model turn that have no result yet (a turn interrupted while
        its tools ran)."""
        turn = self._last_turn()
        if turn is None:
            return []
        answered = {m.tool_call_id for m in self.new_messages[turn + 1 :] if m.role == "tool"}
        calls = self.new_messages[turn].tool_calls
        return [call for call in calls if call.id not in answered]

    def turn_failure(self) -> str:
        """The fail-fast stop of the last turn when one of its results is a failure (a resumed
        turn whose failure was saved before the stop of its queued calls), else ''."""
        turn = self._last_turn()
        if turn is None:
            return ""
        models = [i for i, record in enumerate(self.calls) if record.kind == "model"]
        records = [r for r in self.calls[models[-1] + 1 if models else 0 :] if r.kind == "tool"]
        results = [m for m in self.new_messages[turn + 1 :] if m.role == "tool"]
        # A result and its record are added together, so they pair up in order.
        for record, message in zip(records, results, strict=False):
            if record.status != "ok":
                return f"cancelled: {record.name} ({message.tool_call_id}) failed"
        return ""

    def add_unreported(self, results: list[ToolResult], context_window: int) -> bool:
        """Add the results of ``results`` that the last turn has none for yet (calls stopped
        before they ended report none); True when there were some."""
        missing = {call.id for call in self.unanswered()}
        unreported = [result for result in results if result.call.id in missing]
        for result in unreported:
            self.add_result(result, context_window)
        return bool(unreported)

    def order_results(self) -> bool:
        """Put the last turn's results and their records in the order of its calls (they
        arrive as they end); True when that changed the order of the results."""
        turn = self._last_turn()
        if turn is None:
            return False
        order = {call.id: i for i, call in enumerate(self.new_messages[turn].tool_calls)}
        results = self.new_messages[turn + 1 :]
        ordered = sorted(results, key=lambda m: order.get(m.tool_call_id or "", len(order)))
        self.new_messages[turn + 1 :] = ordered
        # The turn's records follow its model call; those of an earlier execution (resumed)
        # ended first and stay first.
        models = [i for i, record in enumerate(self.calls) if record.kind == "model"]
        start = models[-1] + 1 if models else 0
        self.calls[start:] = sorted(
            self.calls[start:], key=lambda r: order.get(self._call_ids.get(id(r), ""), -1)
        )
        self.tools_used = list(dict.fromkeys(r.name for r in self.calls if r.kind == "tool"))
        return ordered != results

    def _last_turn(self) -> int | None:
        """The index of the last assistant message, if it asked for tool calls."""
        for index in range(len(self.new_messages) - 1, -1, -1):
            message = self.new_messages[index]
            if message.role == "assistant":
                return index if message.tool_calls else None
        return None
