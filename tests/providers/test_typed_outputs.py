"""Typed work on real workers: JSON items, output schemas validated on the worker with
budgeted retries, parsed values on the client."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from pydantic import BaseModel

from orchestrator import (
    AgentRunResult,
    AgentSpec,
    Budget,
    Client,
    InvalidRunError,
    ModelConfig,
    RunFailedError,
    RunHandle,
)
from orchestrator.state.events import ModelTurn
from tests.helpers import scripted


class Invoice(BaseModel):
    vendor: str
    total: float
    paid: bool = False


TOTAL_ONLY = {
    "type": "object",
    "properties": {"total": {"type": "number"}},
    "required": ["total"],
}


def failed_agent(handle: RunHandle[AgentRunResult]) -> AgentRunResult:
    """The result of a single agent run that failed (its agent ended ``error``)."""
    with pytest.raises(RunFailedError) as failed:
        handle.result(30)
    assert isinstance(failed.value.result, AgentRunResult)
    return failed.value.result


def typed(
    name: str, schema: Any, retries: int = 2, max_output_tokens: int = 4096, **options: Any
) -> AgentSpec:
    """A scripted agent whose answers must match ``schema``."""
    model = ModelConfig(provider="scripted", options=options, max_output_tokens=max_output_tokens)
    return AgentSpec(name=name, model=model, output_schema=schema, output_retries=retries)


def test_an_invalid_then_valid_answer_takes_two_calls_and_sets_data(client: Client) -> None:
    script = [{"text": "Sure! The total is 12."}, {"text": '{"total": 12.5}'}]
    spec = typed("extract", TOTAL_ONLY, script=script)
    handle = client.run_agent(spec, "Invoice: 12.50 EUR", budget=Budget(max_tokens=100_000))
    result = handle.result(30)
    output = result.output
    assert output.outcome == "ok"
    assert output.data == {"total": 12.5}
    assert output.answer == '{"total":12.5}'
    assert output.turns == 2
    assert [call.kind for call in result.record.calls] == ["model", "model"]
    ledger = handle.budget()
    assert ledger.calls == 2
    assert ledger.spent_tokens == output.tokens.total_tokens
    # The model got its invalid answer back with what was wrong.
    retry = result.context[-2]
    assert retry.role == "user"
    assert "does not match the required JSON Schema" in retry.content
    assert "not JSON" in retry.content
    turns = [e for e in handle.events(follow=False) if isinstance(e, ModelTurn)]
    assert [t.turn for t in turns] == [1, 2]
    assert turns[0].output_error is not None and "not JSON" in turns[0].output_error
    assert turns[1].output_error is None


@pytest.mark.parametrize("retries", [0, 2])
def test_an_answer_that_never_validates_ends_error_after_one_plus_retries_calls_all_budgeted(
    client: Client, retries: int
) -> None:
    spec = typed("extract", TOTAL_ONLY, retries=retries, answer='{"total": "twelve"}')
    handle = client.run_agent(spec, "Invoice", budget=Budget(max_tokens=100_000))
    output = failed_agent(handle).output
    assert output.outcome == "error"
    assert output.data is None
    assert output.answer == '{"total": "twelve"}'  # the last answer, as it came
    assert output.error is not None
    assert output.error.startswith(f"output_schema: no valid answer in {1 + retries} model call")
    assert "at $.total: 'twelve' is not of type 'number'" in output.error
    assert output.turns == 1 + retries
    ledger = handle.budget()
    assert ledger.calls == 1 + retries
    assert ledger.spent_tokens == output.tokens.total_tokens > 0


def test_a_retry_the_budget_cannot_fit_is_not_made(client: Client) -> None:
    spec = typed("extract", TOTAL_ONLY, max_output_tokens=100, answer="{}")
    # Room for one call (its input and the 100 output tokens it reserves), not for a second,
    # whose input holds the first answer and what was wrong with it.
    handle = client.run_agent(spec, "Invoice", budget=Budget(max_tokens=120))
    output = failed_agent(handle).output
    assert output.outcome == "error"
    assert "budget: max_tokens" in (output.error or "")
    assert output.turns == 1
    assert handle.budget().calls == 1


def test_the_scripted_model_answers_valid_json_for_a_pydantic_schema(client: Client) -> None:
    spec = typed("extract", Invoice)
    assert spec.output_schema == Invoice.model_json_schema()  # data, not the class
    result = client.map_reduce("Extract", ["a", "b"], spec, scripted("reducer")).result(30)
    for output in result.map_outputs:
        assert output.outcome == "ok"
        invoice = output.parsed(Invoice)
        assert invoice == Invoice(vendor="scripted", total=0, paid=False)
        assert json.loads(output.answer) == output.data


def test_parsed_says_why_there_is_no_data(client: Client) -> None:
    result = client.map_reduce("t", ["a"], scripted("m"), scripted("r")).result(30)
    why = "m_0 has no data to parse: the agent had no output_schema"
    with pytest.raises(ValueError, match=why):
        result.map_outputs[0].parsed(Invoice)


def test_json_items_reach_their_mappers_as_compact_json_and_strings_as_they_are(
    client: Client,
) -> None:
    items: list[Any] = [{"id": 7, "name": "Zoë", "tags": ["a", "b"]}, [1, 2.5], 3, None, "plain"]
    result = client.map_reduce("Look", items, scripted("m"), scripted("r")).result(30)
    answers = [output.answer for output in result.map_outputs]
    expected = ['{"id":7,"name":"Zoë","tags":["a","b"]}', "[1,2.5]", "3", "null", "plain"]
    for answer, item in zip(answers, expected, strict=True):
        assert answer.endswith(f"Look\n\nProcess this item: {item}")


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"x": math.nan}, r"items\[1\]\.x: nan is not a finite number"),
        ({"when": {1, 2}}, r"items\[1\]: not a JSON value"),
        (b"bytes", r"items\[1\]: not a JSON value"),
        ({"s": "\ud800"}, r"items\[1\]\.s: not valid Unicode"),
    ],
)
def test_an_item_that_is_no_json_value_is_refused_at_submit(
    client: Client, item: Any, message: str
) -> None:
    with pytest.raises(InvalidRunError, match=message):
        client.map_reduce("t", ["ok", item], scripted("m"), scripted("r"))


def test_an_item_nested_too_deep_is_refused_at_submit(client: Client) -> None:
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    with pytest.raises(InvalidRunError, match=r"items\[0\].*nested deeper than 32 levels"):
        client.map_reduce("t", [deep], scripted("m"), scripted("r"))


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "objekt"}, "not a valid JSON Schema at type"),
        (
            {"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}},
            "may only refer inside itself",
        ),
        ({"$schema": "https://example.com/dialect", "type": "object"}, "not a JSON Schema dialect"),
        (
            {"type": "object", "properties": {"a": {"$ref": "#/$defs/gone"}}},
            "reference '#/\\$defs/gone' points to nothing in the schema",
        ),
        ("Invoice", "a JSON Schema \\(a dict\\) or a pydantic model class"),
    ],
)
def test_a_bad_output_schema_is_refused_at_submit(
    client: Client, schema: Any, message: str
) -> None:
    with pytest.raises(InvalidRunError, match=f"mapper.output_schema: .*{message}"):
        client.map_reduce("t", ["a"], {"name": "m", "output_schema": schema}, scripted("r"))


def test_the_output_schema_cannot_come_as_a_model_option(client: Client) -> None:
    mapper = {"name": "m", "model": {"options": {"output_schema": TOTAL_ONLY}}}
    with pytest.raises(InvalidRunError, match="output_schema cannot be an option"):
        client.map_reduce("t", ["a"], mapper, scripted("r"))


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ('{"total": NaN}', "not JSON: NaN is no JSON value"),
        ('{"total": -Infinity}', "not JSON: -Infinity is no JSON value"),
        ('{"total": 1e400}', "at $.total: inf is not a finite number"),
        ('{"total": ' + "9" * 5000 + "}", "not JSON: Exceeds the limit (4300 digits)"),
    ],
)
def test_an_answer_json_has_no_spelling_for_is_an_invalid_answer_given_back(
    client: Client, answer: str, problem: str
) -> None:
    script = [{"text": answer}, {"text": '{"total": 1}'}]
    handle = client.run_agent(typed("extract", TOTAL_ONLY, script=script), "Invoice")
    output = handle.result(30).output
    assert (output.outcome, output.data, output.turns) == ("ok", {"total": 1}, 2)
    turns = [e for e in handle.events(follow=False) if isinstance(e, ModelTurn)]
    assert turns[0].output_error is not None and turns[0].output_error.startswith(problem)


@pytest.mark.parametrize("depth", [40, 250, 100_000])
def test_an_answer_nested_deeper_than_a_result_may_be_is_refused_and_the_run_ends(
    client: Client, depth: int
) -> None:
    # 250 levels: the output is stored, and no reader can parse it back (pydantic stops at
    # about 200); 100,000: Python's own parser runs out of stack.
    spec = typed("extract", {"type": "array"}, retries=0, answer="[" * depth + "]" * depth)
    output = failed_agent(client.run_agent(spec, "Nest")).output
    assert output.outcome == "error"
    assert output.error is not None and "nested deeper than 32 levels" in output.error


def test_a_schema_whose_references_loop_ends_the_agent_saying_so(client: Client) -> None:
    looping = {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}
    output = failed_agent(client.run_agent(typed("x", looping, retries=0), "Loop")).output
    assert output.error is not None
    assert "the output_schema cannot be evaluated: its references loop" in output.error
