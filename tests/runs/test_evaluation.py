"""Evaluation strategies and the judge's prompt, as pure functions."""

from __future__ import annotations

import pytest

from orchestrator.models import AgentOutput, Usage
from orchestrator.models.results import BranchOutcome
from orchestrator.tokens import estimate_tokens
from workers.kinds.evaluation import (
    StrategyError,
    checked_choice,
    elaborate,
    judge_choice,
    judge_prompt,
    pick_first,
    token_efficient,
)


def outcome(index: int, tokens: int, outcome: str = "ok", answer: str = "") -> BranchOutcome:
    output = AgentOutput(
        name=f"b{index}",
        answer=answer,
        outcome=outcome,  # type: ignore[arg-type]
        error=None if outcome == "ok" else "failed",
        tokens=Usage(output_tokens=tokens),
    )
    return BranchOutcome(
        config_index=index, loop_id=f"s.c.{index + 1}", output=output, original_context_len=0
    )


def test_failed_branches_are_never_selected_by_builtins() -> None:
    outcomes = [outcome(0, 1, "error"), outcome(1, 50), outcome(2, 5), outcome(3, 900, "skipped")]
    assert pick_first(None, outcomes) == 1
    assert token_efficient(None, outcomes) == 2
    assert elaborate(None, outcomes) == 1


def test_a_custom_choice_of_a_failed_branch_is_refused_while_another_succeeded() -> None:
    outcomes = [outcome(0, 1, "error"), outcome(1, 2)]
    with pytest.raises(StrategyError, match=r"chose branch 0 \(s.c.1\), which ended error"):
        checked_choice("mine", 0, outcomes)
    assert checked_choice("mine", 1, outcomes) == 1


@pytest.mark.parametrize("choice", [-1, 2, True, "1", None])
def test_choices_that_are_not_a_branch_index_are_refused(choice: object) -> None:
    with pytest.raises(StrategyError):
        checked_choice("mine", choice, [outcome(0, 1), outcome(1, 1)])


def test_judge_prompt_is_whole_when_it_fits() -> None:
    outcomes = [outcome(0, 1, answer="alpha"), outcome(1, 1, answer="beta")]
    text = judge_prompt("the task", outcomes, "", 10_000)
    assert "Candidate 1:\nalpha" in text and "Candidate 2:\nbeta" in text
    assert "the task" in text


@pytest.mark.parametrize("window", [300, 1_000, 5_000])
def test_judge_prompt_is_compacted_to_fit_80_percent_of_the_window(window: int) -> None:
    outcomes = [outcome(i, 1, answer=str(i) * 20_000) for i in range(4)]
    text = judge_prompt("t" * 10_000, outcomes, "Judge fairly.", window)
    assert estimate_tokens(text) + estimate_tokens("Judge fairly.") <= int(window * 0.8)
    assert all(f"Candidate {n}:" in text for n in range(1, 5))


def test_judge_choice_maps_candidates_back_to_config_indices() -> None:
    outcomes = [outcome(0, 1, "error"), outcome(1, 1), outcome(2, 1)]
    assert judge_choice("I prefer candidate 2.", outcomes) == 2
    with pytest.raises(StrategyError, match="chose candidate 3, but there are 2"):
        judge_choice("3", outcomes)
