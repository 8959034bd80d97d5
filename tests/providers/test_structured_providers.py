"""Output schemas in each provider's native structured-output mode, against local servers that
speak the documented wire formats and refuse a schema the mode would refuse
(``tests/servers/structured_wire.py``)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, Field

from orchestrator import AgentSpec, ModelConfig
from tests.helpers import providers
from tests.providers.test_providers import ANTHROPIC_ANSWER, RESPONSES_ANSWER, TOOLS
from tests.servers.fake_api import FakeAPI, serve_api
from tests.servers.structured_wire import (
    anthropic_rule,
    chat_completion,
    chat_rule,
    responses_rule,
    strict_violations,
)
from workers.agent.loop import AgentRun, run_agent


class Line(BaseModel):
    sku: str = Field(min_length=2, description="the stock-keeping unit")
    quantity: int = Field(ge=1)


class Invoice(BaseModel):
    vendor: str
    total: float
    lines: list[Line] = []
    note: str | None = None


VALID = {"vendor": "ACME", "total": 12.5, "lines": [{"sku": "AB", "quantity": 2}], "note": None}
FREE_FORM = {
    "type": "object",
    "properties": {"totals": {"type": "object", "additionalProperties": {"type": "number"}}},
    "required": ["totals"],
}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAPI]:
    yield from serve_api(monkeypatch)


def run(provider: str, model: str, schema: Any, thinking: str | None = None) -> AgentRun:
    config = ModelConfig(provider=provider, model=model, endpoint=f"test-{provider}")
    spec = AgentSpec(
        name="extract",
        instructions="Extract the invoice.",
        model=config,
        output_schema=schema,
        thinking=thinking,
    )
    return run_agent(spec, "Invoice from ACME, 12.50", run_id="r1", provider_for=providers())


def responses_answer(text: str) -> dict[str, Any]:
    answer = copy.deepcopy(RESPONSES_ANSWER)
    answer["output"][0]["content"][0]["text"] = text
    return answer


def anthropic_answer(content: list[dict[str, Any]]) -> dict[str, Any]:
    answer = copy.deepcopy(ANTHROPIC_ANSWER)
    answer["content"] = content
    return answer


def test_openai_chat_asks_for_a_strict_json_schema_the_api_accepts(api: FakeAPI) -> None:
    assert strict_violations(Invoice.model_json_schema()) != []  # as it is, strict mode refuses it
    api.rule = chat_rule
    api.reply(chat_completion(json.dumps(VALID)))
    result = run("openai", "gpt-test", Invoice)
    assert result.output.outcome == "ok", result.output.error
    assert result.output.data == VALID
    (_, _, body) = api.requests[0]
    asked = body["response_format"]
    assert asked["type"] == "json_schema"
    assert asked["json_schema"]["name"] == "Invoice"
    assert asked["json_schema"]["strict"] is True
    schema = asked["json_schema"]["schema"]
    assert strict_violations(schema) == []
    # The order of the properties is the model's (the model answers in that order).
    assert list(schema["properties"]) == ["vendor", "total", "lines", "note"]
    # What strict mode cannot say stays in the description, for the model to read.
    sku = schema["$defs"]["Line"]["properties"]["sku"]
    assert sku["description"] == "the stock-keeping unit\n\n{minLength: 2}"


def test_a_schema_strict_mode_cannot_take_is_sent_as_it_is_without_strict(api: FakeAPI) -> None:
    api.rule = chat_rule
    api.reply(chat_completion('{"totals": {"EUR": 3.5}}'))
    result = run("openai", "gpt-test", FREE_FORM)
    assert result.output.data == {"totals": {"EUR": 3.5}}
    asked = api.requests[0][2]["response_format"]["json_schema"]
    assert asked == {"name": "output", "schema": FREE_FORM, "strict": False}


def test_a_refusal_is_an_invalid_answer_given_back_to_the_model(api: FakeAPI) -> None:
    api.rule = chat_rule
    refusal = chat_completion("")
    refusal["choices"][0]["message"] = {"role": "assistant", "content": None, "refusal": "No."}
    api.reply(refusal)
    api.reply(chat_completion(json.dumps(VALID)))
    result = run("openai", "gpt-test", Invoice)
    assert result.output.data == VALID
    assert len(api.requests) == 2
    retry = api.requests[1][2]["messages"]
    assert retry[-2] == {"role": "assistant", "content": "No."}
    assert "does not match the required JSON Schema" in retry[-1]["content"]


def test_openai_responses_asks_in_text_format(api: FakeAPI) -> None:
    api.rule = responses_rule
    api.reply(responses_answer(json.dumps(VALID)))
    result = run("openai_responses", "gpt-test", Invoice)
    assert result.output.data == VALID, result.output.error
    (path, _, body) = api.requests[0]
    assert path == "/v1/responses"
    fmt = body["text"]["format"]
    assert (fmt["type"], fmt["name"], fmt["strict"]) == ("json_schema", "Invoice", True)
    assert strict_violations(fmt["schema"]) == []


def test_anthropic_asks_for_structured_outputs_it_accepts(api: FakeAPI) -> None:
    api.rule = anthropic_rule
    api.reply(anthropic_answer([{"type": "text", "text": json.dumps(VALID)}]))
    result = run("anthropic", "claude-test", Invoice)
    assert result.output.data == VALID, result.output.error
    body = api.requests[0][2]
    fmt = body["output_config"]["format"]
    assert fmt["type"] == "json_schema"
    assert fmt["schema"]["additionalProperties"] is False
    assert "tool_choice" not in body


def test_anthropic_answers_a_free_form_schema_through_a_forced_tool(api: FakeAPI) -> None:
    api.rule = anthropic_rule
    call = {"type": "tool_use", "id": "toolu_9", "name": "structured_output"}
    api.reply(anthropic_answer([{**call, "input": {"totals": {"EUR": 3.5}}}]))
    result = run("anthropic", "claude-test", FREE_FORM)
    assert result.output.data == {"totals": {"EUR": 3.5}}, result.output.error
    assert result.output.tool_calls == 0
    body = api.requests[0][2]
    assert "output_config" not in body
    assert body["tool_choice"] == {"type": "tool", "name": "structured_output"}
    assert body["tools"][-1]["input_schema"] == FREE_FORM


def test_anthropic_with_thinking_asks_a_free_form_schema_in_the_system_prompt(
    api: FakeAPI,
) -> None:
    api.rule = anthropic_rule  # a forced tool with thinking on is a 400
    api.reply(anthropic_answer([{"type": "text", "text": '{"totals": {}}'}]))
    config = ModelConfig(
        provider="anthropic", model="claude-test", endpoint="test-anthropic", max_output_tokens=4096
    )
    spec = AgentSpec(name="x", model=config, output_schema=FREE_FORM, thinking="low")
    result = run_agent(spec, "Totals?", run_id="r1", provider_for=providers())
    assert result.output.data == {"totals": {}}, result.output.error
    body = api.requests[0][2]
    assert "tool_choice" not in body
    assert body["system"].endswith(json.dumps(FREE_FORM, sort_keys=True, separators=(",", ":")))


NODE = {
    "type": "object",
    "$defs": {
        "Node": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "next": {
                    "anyOf": [{"$ref": "#/$defs/Node", "description": "the next"}, {"type": "null"}]
                },
            },
            "required": ["name", "next"],
        }
    },
    "properties": {"head": {"$ref": "#/$defs/Node", "description": "the first node"}},
    "required": ["head"],
}


def test_openai_strict_mode_takes_a_recursive_reference_beside_a_description(
    api: FakeAPI,
) -> None:
    api.rule = chat_rule
    chain = {"head": {"name": "a", "next": {"name": "b", "next": None}}}
    api.reply(chat_completion(json.dumps(chain)))
    result = run("openai", "gpt-test", NODE)
    assert result.output.data == chain, result.output.error
    asked = api.requests[0][2]["response_format"]["json_schema"]
    assert asked["strict"] is True
    head = asked["schema"]["properties"]["head"]
    assert head["description"] == "the first node"  # the reference's target, with its words
    assert head["properties"]["next"]["anyOf"][0] == {"$ref": "#/$defs/Node"}


@pytest.mark.parametrize(
    "schema",
    [
        # ``b`` is required and not listed: strict mode's closed object could never give it.
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "b"]},
        # A reference's own properties are the ones its sibling adds to, not replaces.
        {
            "type": "object",
            "$defs": {
                "Base": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}},
                    "required": ["id"],
                }
            },
            "properties": {
                "item": {"$ref": "#/$defs/Base", "properties": {"note": {"type": "string"}}}
            },
            "required": ["item"],
        },
        # Three properties at least, of two listed.
        {"type": "object", "properties": {"a": {}, "b": {}}, "minProperties": 3},
    ],
)
def test_openai_strict_mode_is_not_asked_for_where_it_would_refuse_every_valid_answer(
    api: FakeAPI, schema: dict[str, Any]
) -> None:
    api.rule = chat_rule
    api.reply(chat_completion("{}"))
    run("openai", "gpt-test", schema)
    asked = api.requests[0][2]["response_format"]["json_schema"]
    assert asked == {"name": "output", "schema": schema, "strict": False}


@pytest.mark.parametrize(
    "note", [{"type": ["string", "null"]}, {}, {"description": "anything you see"}]
)
def test_anthropic_asks_through_the_tool_for_a_schema_its_sdk_cannot_adapt(
    api: FakeAPI, note: dict[str, Any]
) -> None:
    schema = {"type": "object", "properties": {"note": note}, "required": ["note"]}
    api.rule = anthropic_rule
    call = {"type": "tool_use", "id": "toolu_1", "name": "structured_output"}
    api.reply(anthropic_answer([{**call, "input": {"note": None}}]))
    result = run("anthropic", "claude-test", schema)
    assert result.output.data == {"note": None}, result.output.error
    body = api.requests[0][2]
    assert "output_config" not in body
    assert body["tools"][-1]["input_schema"] == schema


def test_anthropic_runs_the_tools_called_beside_the_output_tool(api: FakeAPI) -> None:
    api.rule = anthropic_rule
    add = {"type": "tool_use", "id": "toolu_add", "name": "add", "input": {"a": 2, "b": 3}}
    early = {"type": "tool_use", "id": "toolu_out", "name": "structured_output"}
    api.reply(anthropic_answer([add, {**early, "input": {"totals": {"guess": 4.0}}}]))
    api.reply(anthropic_answer([{**early, "input": {"totals": {"sum": 5.0}}}]))
    config = ModelConfig(provider="anthropic", model="claude-test", endpoint="test-anthropic")
    spec = AgentSpec(name="x", model=config, output_schema=FREE_FORM, tools=["add"])
    result = run_agent(spec, "Add 2 and 3.", run_id="r1", provider_for=providers(), tools=TOOLS)
    assert result.output.data == {"totals": {"sum": 5.0}}, result.output.error
    assert (result.output.tool_calls, result.output.turns) == (1, 2)
    assert api.requests[0][2]["tool_choice"] == {"type": "any"}
    # The second call carries the tool's result, and no trace of the answer given beside it.
    second = api.requests[1][2]["messages"]
    assert [b["type"] for b in second[-2]["content"]] == ["tool_use"]
    assert second[-1]["content"][0]["tool_use_id"] == "toolu_add"
