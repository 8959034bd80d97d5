"""What each reducer call of a map-reduce is given, and the rule that makes it fit.

A reducer call fits when its input (the reducer's instructions and its prompt, as the model
reads them: joined by a newline) takes at most ``INPUT_SHARE`` of the reducer's
``context_window`` by ``estimate_tokens``. When the one prompt over every summary does not
fit, the summaries are reduced as a tree (``workers/kinds/reduce_tree.py``): consecutive entries are
packed into chunks whose prompts fit, and each chunk goes to a partial reducer, whose answers
are the entries of the next level.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.models import AgentOutput, AgentSpec
from orchestrator.models.schemas import canonical
from orchestrator.state.results import summaries
from orchestrator.tokens import CHARS_PER_TOKEN

INPUT_SHARE = 0.8
"""The share of the reducer's context window its input may take; the rest is for its answer
and for the estimate's error."""
CLOSING = "Combine these into a single coherent result."
CUT_MARK = " [...cut]"
MIN_ENTRY_CHARS = 40
"""The least room an entry may have: a window that leaves less cannot reduce anything."""


def reducer_prompt(task: str, outputs: list[AgentOutput]) -> str:
    """The one reducer prompt over every summary (what a run whose summaries fit sends)."""
    return _prompt(task, f"Results from {len(outputs)} sub-agents:", summaries(outputs))


def entry(name: str, answer: str) -> str:
    """The line a partial reducer's answer is at the next level."""
    return f"- [{name}] {answer}"


def room_chars(spec: AgentSpec) -> int:
    """How many characters a prompt to ``spec`` may have and still fit: ``estimate_tokens``
    counts four characters a token, rounded up, of the instructions, a newline and the prompt;
    an output schema goes with every call and takes its room too."""
    budget = int(spec.model.context_window * INPUT_SHARE) * CHARS_PER_TOKEN
    schema = spec.output_json_schema
    taken = len(canonical(schema)) if schema is not None else 0
    return budget - (len(spec.instructions) + 1 if spec.instructions else 0) - taken


def fits(spec: AgentSpec, prompt: str) -> bool:
    """Whether a call to ``spec`` with ``prompt`` fits its input budget."""
    return len(prompt) <= room_chars(spec)


class NoRoom(ValueError):
    """The reducer's context window leaves no room for a prompt beside its instructions, or
    for typed data that may not be cut."""


@dataclass(frozen=True)
class TreeFrame:
    """The prompts of one run's tree reduce: every prompt it builds fits the reducer's input
    budget, and every chunk but the last of a level holds at least two entries, so each level
    has fewer entries than the one before and the tree ends.

    Parameters:
        task: the run's task, cut to a quarter of the room if it is longer.
        total: how many mappers the run had.
        capacity: how many characters a chunk's entries may take, joined by newlines.
    """

    task: str
    total: int
    capacity: int

    @classmethod
    def for_run(cls, spec: AgentSpec, task: str, total: int) -> TreeFrame:
        """The frame of a run of ``total`` mappers on ``task`` reduced by ``spec``; ``NoRoom``
        when its window is too small for that."""
        room = room_chars(spec)
        task = cut(task, max(room // 4, MIN_ENTRY_CHARS))
        # Every number in a header is at most ``total``: the longest header bounds them all.
        longest = max((_header(level, total, total, total, total) for level in (1, 2)), key=len)
        capacity = room - len(_prompt(task, longest, []))
        if (capacity - 1) // 2 < MIN_ENTRY_CHARS:
            raise NoRoom(
                f"the reducer's context window ({spec.model.context_window} tokens, "
                f"{INPUT_SHARE:.0%} of it for input) leaves no room for its prompt beside its "
                f"instructions ({len(spec.instructions)} characters)"
            )
        return cls(task=task, total=total, capacity=capacity)

    @property
    def entry_chars(self) -> int:
        """The most characters one entry may have: any two fit in one chunk."""
        return (self.capacity - 1) // 2

    def chunks(self, entries: list[str], whole: bool = False) -> list[list[str]]:
        """``entries`` in order, each cut to ``entry_chars``, packed greedily into chunks that
        fit (one chunk, maybe empty, when they all fit).

        ``whole``: the entries are typed data (compact JSON), never cut. ``NoRoom`` when one
        is longer than a chunk may be, or when they are so long that no chunk holds two (the
        tree would never end)."""
        if whole:
            return self._whole_chunks(entries)
        packed: list[list[str]] = []
        current: list[str] = []
        used = -1  # the joined length of ``current``: one newline fewer than its entries
        for line in entries:
            line = cut(line, self.entry_chars)
            if current and used + 1 + len(line) > self.capacity:
                packed.append(current)
                current, used = [], -1
            current.append(line)
            used += 1 + len(line)
        packed.append(current)
        return packed

    def _whole_chunks(self, entries: list[str]) -> list[list[str]]:
        packed: list[list[str]] = [[]]
        used = -1
        for line in entries:
            if len(line) > self.capacity:
                raise NoRoom(
                    f"typed data too long for one reducer call: {line[:80]}... is "
                    f"{len(line)} characters, and the reducer's window takes {self.capacity} "
                    "beside its prompt (a larger context_window, or a smaller output_schema)"
                )
            if packed[-1] and used + 1 + len(line) > self.capacity:
                packed.append([])
                used = -1
            packed[-1].append(line)
            used += 1 + len(line)
        if 1 < len(packed) == len(entries):
            raise NoRoom(
                f"typed data too long to combine: no two of these {len(entries)} entries fit "
                f"one reducer call ({self.capacity} characters beside its prompt)"
            )
        return packed

    def prompt(self, level: int, part: int, parts: int, lines: list[str]) -> str:
        """The prompt of chunk ``part`` of ``parts`` at ``level`` (1: the mappers' summaries;
        above: partial reducers' answers), or of the one reducer over a level in one chunk."""
        return _prompt(self.task, _header(level, part, parts, len(lines), self.total), lines)


def cut(text: str, limit: int) -> str:
    """``text``, or its start and ``CUT_MARK`` within ``limit`` characters."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(CUT_MARK))] + CUT_MARK


def _header(level: int, part: int, parts: int, count: int, total: int) -> str:
    which = f" (part {part} of {parts})" if parts > 1 else ""
    if level == 1:
        if parts == 1:
            return f"Results from {total} sub-agents:"
        return f"Results from {count} of {total} sub-agents{which}:"
    return f"Partial results, each combining the results of some of {total} sub-agents{which}:"


def _prompt(task: str, header: str, lines: list[str]) -> str:
    body = "\n".join(lines)
    return f"Original task: {task}\n\n{header}\n{body}\n\n{CLOSING}"
