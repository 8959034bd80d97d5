"""Custom evaluation strategies, registered on the test workers with ``@strategy``
(``ORCHESTRATOR_STRATEGY_MODULES=tests.registered.strategies``)."""

from __future__ import annotations

from orchestrator import BranchOutcome, strategy


@strategy
def pick_last(prompt: str | None, outcomes: list[BranchOutcome]) -> int:
    return outcomes[-1].config_index


@strategy
def out_of_range(prompt: str | None, outcomes: list[BranchOutcome]) -> int:
    return 99
