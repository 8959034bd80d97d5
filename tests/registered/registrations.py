"""One module with a registration of every kind, served through ``ORCHESTRATOR_MODULES`` alone
(``tests/runs/test_reducer_functions.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator import AgentOutput, BranchOutcome, reducer, strategy, tool


@tool
def shout(text: str) -> str:
    """The text in capitals."""
    return text.upper()


@strategy
def pick_shortest(prompt: str | None, outcomes: list[BranchOutcome]) -> int:
    return min(outcomes, key=lambda o: len(o.output.answer)).config_index


@reducer
def joined(task: str, outputs: Sequence[AgentOutput]) -> str:
    return "|".join(output.answer for output in outputs)
