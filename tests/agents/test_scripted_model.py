"""The offline scripted model: deterministic, no network, options as documented."""

from __future__ import annotations

import threading

import pytest

from orchestrator.models import Message, ModelConfig
from orchestrator.tokens import estimate_tokens
from workers.agent.structured import asked, check_answer
from workers.execution.cancellation import Cancelled, CancelToken
from workers.providers import ProviderError
from workers.providers.scripted import ScriptedModel

MODEL = ScriptedModel()


def ask(options: dict[str, object], text: str = "hello", cancel: CancelToken | None = None):  # type: ignore[no-untyped-def]
    config = ModelConfig(provider="scripted", options=options)
    return MODEL.complete(config, [Message(role="user", content=text)], cancel or CancelToken())


def test_default_answer_contains_the_last_user_message() -> None:
    assert "summarise item 7" in ask({}, "summarise item 7").text


def test_usage_is_estimated_from_text_length() -> None:
    response = ask({}, "x" * 40)
    assert response.usage.input_tokens == estimate_tokens("x" * 40) == 10
    assert response.usage.output_tokens == estimate_tokens(response.text)


def test_jitter_is_seeded_so_the_same_call_takes_the_same_time() -> None:
    options = {"latency_ms": 100, "jitter_ms": 80, "seed": 5}
    first = MODEL._latency_s(options, "prompt", 0)
    assert first == MODEL._latency_s(options, "prompt", 0)
    assert first != MODEL._latency_s(options, "other prompt", 0)
    assert 0.02 <= first <= 0.18


class RecordingToken(CancelToken):
    """A cancel token that records the waits asked of it and signals the first one."""

    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []
        self.sleeping = threading.Event()

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.sleeping.set()
        super().sleep(seconds)


def test_latency_is_waited() -> None:
    cancel = RecordingToken()
    ask({"latency_ms": 150}, cancel=cancel)
    assert cancel.slept == [0.15]


def test_fail_on_raises_a_provider_error() -> None:
    with pytest.raises(ProviderError, match="'boom'"):
        ask({"fail_on": "boom"}, "this will boom")
    assert ask({"fail_on": "boom"}, "this is fine").text


def test_script_turns_answer_model_calls_in_order() -> None:
    script = [{"tool_calls": [{"name": "search", "arguments": {"q": "x"}}]}, {"text": "done"}]
    config = ModelConfig(provider="scripted", options={"script": script})
    messages = [Message(role="user", content="go")]
    first = MODEL.complete(config, messages, CancelToken())
    assert [(c.name, c.arguments) for c in first.tool_calls] == [("search", {"q": "x"})]
    messages.append(Message(role="assistant", tool_calls=first.tool_calls))
    assert MODEL.complete(config, messages, CancelToken()).text == "done"


def test_cost_follows_the_configured_price() -> None:
    response = ask({"cost_per_1k_tokens": 2.0}, "x" * 400)
    assert response.usage.cost_usd == pytest.approx(response.usage.total_tokens * 2.0 / 1000)


def test_cancel_interrupts_the_latency() -> None:
    cancel = RecordingToken()
    raised: list[BaseException] = []

    def call() -> None:
        try:
            ask({"latency_ms": 3_600_000}, cancel=cancel)  # an hour
        except BaseException as stop:
            raised.append(stop)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    assert cancel.sleeping.wait(30), "the model never started its latency"
    cancel.cancel("stop")
    caller.join(30)  # the hour-long latency ends only if the cancel interrupts it
    assert not caller.is_alive()
    (stop,) = raised
    assert isinstance(stop, Cancelled) and "stop" in str(stop)


SCHEMAS = [
    {"type": "object", "properties": {"total": {"type": "number", "exclusiveMinimum": 0}}},
    {
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date"},
            "kind": {"enum": ["invoice", "receipt"]},
            "lines": {"type": "array", "items": {"$ref": "#/$defs/Line"}, "minItems": 2},
            "note": {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}]},
        },
        "required": ["when", "kind", "lines"],
        "$defs": {
            "Line": {
                "type": "object",
                "properties": {"qty": {"type": "integer", "minimum": 1, "multipleOf": 5}},
                "required": ["qty"],
                "additionalProperties": False,
            }
        },
    },
    {"type": "array", "items": {"type": "boolean"}, "minItems": 1},
    {"type": "string", "minLength": 12},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_with_an_output_schema_the_default_answer_is_json_the_schema_validates(
    schema: dict[str, object],
) -> None:
    config = asked(ModelConfig(provider="scripted"), schema)
    response = MODEL.complete(config, [Message(role="user", content="go")], CancelToken())
    checked = check_answer(schema, response.text)
    assert checked.valid, checked.problems


def test_a_script_or_an_answer_still_wins_over_the_schema_to_exercise_retries() -> None:
    schema = SCHEMAS[0]
    scripted = asked(ModelConfig(provider="scripted", options={"script": [{"text": "no"}]}), schema)
    assert (
        MODEL.complete(scripted, [Message(role="user", content="go")], CancelToken()).text == "no"
    )
    fixed = asked(ModelConfig(provider="scripted", options={"answer": "{}"}), schema)
    assert MODEL.complete(fixed, [Message(role="user", content="go")], CancelToken()).text == "{}"
