"""Parallel branches on real workers: loop ids, contexts, strategies, failure, cancel."""

from __future__ import annotations

import time
from typing import Any

import pytest

from orchestrator import (
    AgentSpec,
    Client,
    InvalidRunError,
    Message,
    ModelConfig,
    RunFailedError,
)
from orchestrator.models.requests import branch_loop_ids
from tests.helpers import scripted

BASE = [
    Message(role="user", content="Tell me about tides."),
    Message(role="assistant", content="Tides follow the moon."),
    Message(role="user", content="Go on."),
]


def branch(config_id: str, **options: Any) -> AgentSpec:
    spec = scripted("brancher", **options)
    return spec.model_copy(update={"config_id": config_id})


def test_loop_ids_are_session_segment_and_position() -> None:
    configs = [
        AgentSpec(name="a", config_id="fast"),
        AgentSpec(name="b", model=ModelConfig(model="GPT-4.1 Mini"), thinking="high"),
        AgentSpec(name="c"),
    ]
    assert branch_loop_ids("s1", configs) == [
        "s1.fast.1",
        "s1.scripted.gpt-4-1-mini.high.2",
        "s1.scripted.scripted-1.3",
    ]
    assert branch_loop_ids("s1", configs) == branch_loop_ids("s1", configs)


def test_branches_share_a_generated_session_and_carry_their_loop_ids(client: Client) -> None:
    handle = client.parallel_branches([branch("one"), branch("two")], prompt="hi")
    result = handle.result(30)
    session = result.session_id
    assert len(session) == 32
    assert [o.loop_id for o in result.outcomes] == [f"{session}.one.1", f"{session}.two.2"]


def test_each_branch_starts_from_the_same_context_and_diverges(client: Client) -> None:
    configs = [branch("short", answer="A"), branch("long", answer="BBBB")]
    handle = client.parallel_branches(configs, prompt="Details?", base_context=BASE)
    result = handle.result(30)
    for outcome, answer in zip(result.outcomes, ["A", "BBBB"], strict=True):
        assert outcome.original_context_len == 3
        assert [(m.role, m.content) for m in outcome.new_messages] == [
            ("user", "Details?"),
            ("assistant", answer),
        ]
    assert result.selected_index == 0
    assert result.selected_context == [*BASE, *result.outcomes[0].new_messages]
    assert result.selected_messages == result.outcomes[0].new_messages


def test_pick_first_takes_the_first_successful_config_not_the_first_to_finish(
    client: Client,
) -> None:
    configs = [branch("slow", latency_ms=400, answer="slow"), branch("fast", answer="fast")]
    result = client.parallel_branches(configs, prompt="q").result(30)
    assert result.selected_index == 0
    assert result.outcomes[1].output.ended_at < result.outcomes[0].output.ended_at  # type: ignore[operator]


def test_a_failing_branch_is_not_selected_and_does_not_fail_the_run(client: Client) -> None:
    configs = [branch("broken", fail_on="q"), branch("fine", answer="ok")]
    handle = client.parallel_branches(configs, prompt="q")
    result = handle.result(30)
    assert handle.status().state == "succeeded"
    assert result.outcomes[0].output.outcome == "error"
    assert result.selected_index == 1 and result.selected_messages[-1].content == "ok"


@pytest.mark.parametrize(("strategy", "expected"), [("token_efficient", 1), ("elaborate", 3)])
def test_token_strategies_pick_by_total_tokens_with_ties_to_the_earlier_config(
    client: Client, strategy: str, expected: int
) -> None:
    answers = ["a" * 40, "b" * 4, "c" * 4, "d" * 80, "e" * 80]
    configs = [branch(f"c{i}", answer=answer) for i, answer in enumerate(answers)]
    result = client.parallel_branches(configs, prompt="q", strategy=strategy).result(30)
    assert result.selected_index == expected


def test_transparent_takes_exactly_one_config(client: Client) -> None:
    with pytest.raises(InvalidRunError, match="exactly one config, got 2"):
        client.parallel_branches([branch("a"), branch("b")], prompt="q", strategy="transparent")
    result = client.parallel_branches([branch("a")], prompt="q", strategy="transparent").result(30)
    assert result.selected_index == 0


def test_a_custom_strategy_is_loaded_from_its_import_path(client: Client) -> None:
    configs = [branch("a"), branch("b"), branch("c")]
    result = client.parallel_branches(configs, prompt="q", strategy="pick_last").result(30)
    assert result.selected_index == 2


def test_an_out_of_range_choice_is_a_clear_error_not_a_clamp(client: Client) -> None:
    handle = client.parallel_branches(
        [branch("a"), branch("b")], prompt="q", strategy="out_of_range"
    )
    with pytest.raises(RunFailedError, match="chose branch 99, but there are 2") as failed:
        handle.result(30)
    assert len(failed.value.result.outcomes) == 2  # the branches' work is still there


def test_llm_judge_selects_the_named_candidate_and_its_usage_counts(client: Client) -> None:
    judge = scripted("judge", answer="Candidate 2 is the most complete.")
    configs = [branch("a", answer="short"), branch("b", answer="a longer answer")]
    result = client.parallel_branches(configs, prompt="q", strategy="llm_judge", judge=judge)
    outcome = result.result(30)
    assert outcome.selected_index == 1
    assert outcome.evaluation_usage.total_tokens > 0
    branch_tokens = sum(o.usage.total_tokens for o in outcome.outcomes)
    assert outcome.total_usage.total_tokens == branch_tokens + outcome.evaluation_usage.total_tokens


def test_llm_judge_input_is_compacted_to_fit_its_context_budget(client: Client) -> None:
    judge = AgentSpec(
        name="judge",
        model=ModelConfig(provider="scripted", options={"answer": "1"}, context_window=400),
    )
    configs = [branch(f"b{i}", answer=str(i) * 3000) for i in range(3)]
    result = client.parallel_branches(
        configs, prompt="q", strategy="llm_judge", judge=judge
    ).result(30)
    assert result.selected_index == 0
    assert 0 < result.evaluation_usage.input_tokens <= int(400 * 0.8)


def test_a_judge_without_a_number_fails_the_run_clearly(client: Client) -> None:
    judge = scripted("judge", answer="They are all fine.")
    handle = client.parallel_branches(
        [branch("a"), branch("b")], prompt="q", strategy="llm_judge", judge=judge
    )
    with pytest.raises(RunFailedError, match="the judge named no candidate"):
        handle.result(30)


def test_continue_mode_needs_a_context_to_answer(client: Client) -> None:
    with pytest.raises(InvalidRunError, match="base_context must not be empty"):
        client.parallel_branches([branch("a")])
    ends_on_assistant = [*BASE[:2]]
    with pytest.raises(InvalidRunError, match="must not end on an assistant message"):
        client.parallel_branches([branch("a")], base_context=ends_on_assistant)


def test_branches_continue_a_context_without_a_prompt(client: Client) -> None:
    result = client.parallel_branches([branch("a")], base_context=BASE).result(30)
    assert [m.role for m in result.selected_messages] == ["assistant"]
    assert "Go on." in result.selected_messages[0].content


def test_cancelling_a_branch_run_stops_every_branch(client: Client) -> None:
    configs = [branch(f"b{i}", latency_ms=3_600_000) for i in range(4)]  # an hour each
    handle = client.parallel_branches(configs, prompt="q")
    while handle.status().in_flight < 4:
        time.sleep(0.05)
    handle.cancel()
    result = handle.result(timeout=60)  # ends only if the cancel stopped the running branches
    assert handle.status().state == "cancelled"
    assert [o.output.outcome for o in result.outcomes] == ["cancelled"] * 4
    assert result.selected_index is None
