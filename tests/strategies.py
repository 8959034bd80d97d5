"""Custom evaluation strategies, loaded by workers through their import path."""

from __future__ import annotations

from orchestrator import BranchOutcome


def pick_last(prompt: str | None, outcomes: list[BranchOutcome]) -> int:
    return outcomes[-1].config_index


def out_of_range(prompt: str | None, outcomes: list[BranchOutcome]) -> int:
    return 99
