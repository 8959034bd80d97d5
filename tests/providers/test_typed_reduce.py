"""An LLM reducer over typed outputs, on real workers: each mapper's data is one compact JSON
line, never cut (the tree reduce keeps every call within its window); a reducer with its own
schema gives the result's ``reduced_data``; branches and the judge work with typed outputs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator import AgentSpec, Client, ModelConfig, RunFailedError
from tests.helpers import scripted
from tests.runs.test_tree_reduce import INPUT_BUDGET, WINDOW, partials, reducer_turns

LONG_NOTE = {
    "type": "object",
    "properties": {"note": {"type": "string", "minLength": 400}, "n": {"type": "integer"}},
    "required": ["note", "n"],
}
NOTE = "scripted" + "x" * 392
LINE = json.dumps({"note": NOTE, "n": 0}, separators=(",", ":"))


def typed(name: str, schema: Any, context_window: int = 128_000, **options: Any) -> AgentSpec:
    model = ModelConfig(provider="scripted", context_window=context_window, options=options)
    return AgentSpec(name=name, model=model, output_schema=schema)


def test_an_llm_reducer_gets_each_mapper_s_data_as_one_compact_json_line_uncut(
    client: Client,
) -> None:
    result = client.map_reduce("Notes", ["a", "b", "c"], typed("m", LONG_NOTE), scripted("r"))
    reduced = result.result(30).reduced_answer
    assert len(LINE) > 400
    for i in range(3):
        assert f"\n- [m_{i}] {LINE}\n" in reduced


def test_a_reducer_with_its_own_schema_gives_the_reduced_data(client: Client) -> None:
    summary = {
        "type": "object",
        "properties": {"count": {"type": "integer", "minimum": 3}, "ok": {"const": True}},
        "required": ["count", "ok"],
    }
    handle = client.map_reduce("Count", ["a", "b", "c"], typed("m", LONG_NOTE), typed("r", summary))
    result = handle.result(30)
    assert result.reduced_data == {"count": 3, "ok": True}
    assert result.reduced_answer == '{"count":3,"ok":true}'
    assert result.reducer_output is not None and result.reducer_output.data == result.reduced_data


def test_the_tree_reduce_keeps_typed_lines_whole_and_every_call_in_its_window(
    client: Client,
) -> None:
    reducer = AgentSpec(name="reducer", model=ModelConfig(context_window=WINDOW))
    handle = client.map_reduce("Notes", [str(i) for i in range(12)], typed("m", LONG_NOTE), reducer)
    result = handle.result(60)
    assert result.reducer_output is not None and result.reducer_output.outcome == "ok"
    turns = reducer_turns(list(handle.events(follow=False)))
    assert all(t.usage.input_tokens <= INPUT_BUDGET for t in turns), "every reducer call fits"
    first = [output for part, output in partials(client, handle.id).items() if part[0] == "1"]
    assert len(first) > 1
    given = "".join(output.answer for output in first)
    for i in range(12):
        assert f"- [m_{i}] {LINE}" in given  # whole, in one call


def test_typed_data_too_long_for_one_reducer_call_fails_the_reduce_saying_so(
    client: Client,
) -> None:
    longer = {"type": "object", "properties": {"note": {"type": "string", "minLength": 2000}}}
    reducer = AgentSpec(name="reducer", model=ModelConfig(context_window=WINDOW))
    handle = client.map_reduce("Notes", ["a", "b"], typed("m", longer), reducer)
    with pytest.raises(RunFailedError, match="reducer failed: typed data too long"):
        handle.result(30)


def test_strategies_select_among_typed_branches(client: Client) -> None:
    total = {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}
    never = typed("a", total, answer="twelve")
    valid = typed("b", total, answer='{"total": 12}')
    result = client.parallel_branches([never, valid], prompt="Total?").result(30)
    assert result.outcomes[0].output.outcome == "error"
    assert result.selected is not None and result.selected.config_index == 1
    assert result.selected.output.data == {"total": 12}
    assert result.selected.output.answer == '{"total":12}'
    assert result.selected_messages[-1].content == '{"total": 12}'  # as the model said it


def test_the_judge_picks_among_typed_branches(client: Client) -> None:
    total = {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}
    branches = [typed("a", total, answer='{"total": 1}'), typed("b", total, answer='{"total": 2}')]
    judge = scripted("judge", answer="Candidate 2")
    result = client.parallel_branches(
        branches, prompt="Total?", strategy="llm_judge", judge=judge
    ).result(30)
    assert [o.output.data for o in result.outcomes] == [{"total": 1}, {"total": 2}]
    assert result.selected is not None and result.selected.output.data == {"total": 2}
