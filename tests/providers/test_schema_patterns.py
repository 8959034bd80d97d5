"""The regular expressions of an output schema (``pattern``, ``patternProperties``) come from a
client, the strings they are matched against from a model: a worker matches them in linear
time (RE2), so no pair of them can hold a worker, and a pattern that would need backtracking
is refused at submit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import ValidationError

from orchestrator import AgentRunResult, AgentSpec, Client, ModelConfig, RunFailedError
from orchestrator.local import LocalRedis, LocalWorker, wait_for_workers
from workers.agent.structured import check_answer

# Python's ``re`` needs about 2**40 steps to find that this string does not match: hours, with
# the GIL held all along (no heartbeat, time limit or cancel of the worker runs meanwhile).
EVIL = "^(a+)+$"
SLOW = "a" * 40 + "!"


@pytest.fixture
def lone_worker(private_redis: LocalRedis, tmp_path: Path) -> Iterator[Client]:
    """A worker of the test's own: a regression would freeze it, not the session's."""
    env = {"ORCHESTRATOR_REDIS_URL": private_redis.url, "ORCHESTRATOR_LEASE_S": "2"}
    worker = LocalWorker("patterns", env, concurrency=2, log_path=tmp_path / "worker.log")
    try:
        wait_for_workers(redis.Redis.from_url(private_redis.url), [worker.hostname])
        yield Client(redis_url=private_redis.url)
    finally:
        worker.stop()


def refused(schema: dict[str, Any], answer: Any, client: Client) -> str:
    """The error of a scripted agent that always answers ``answer`` against ``schema``."""
    model = ModelConfig(provider="scripted", options={"answer": json.dumps(answer)})
    spec = AgentSpec(name="x", model=model, output_schema=schema, output_retries=1)
    with pytest.raises(RunFailedError) as failed:
        client.run_agent(spec, "Answer.").result(60)
    result = failed.value.result
    assert isinstance(result, AgentRunResult)
    assert result.output.turns == 2  # both calls' answers were checked
    return result.output.error or ""


def test_a_catastrophic_pattern_is_matched_in_linear_time(lone_worker: Client) -> None:
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": EVIL}}}
    error = refused(schema, {"s": SLOW}, lone_worker)
    assert f"at $.s: '{SLOW}' does not match '{EVIL}'" in error


def test_catastrophic_pattern_properties_are_matched_in_linear_time(lone_worker: Client) -> None:
    schema = {
        "type": "object",
        "patternProperties": {EVIL: {"type": "integer"}},
        "additionalProperties": False,
    }
    error = refused(schema, {SLOW: 1}, lone_worker)
    assert f"'{SLOW}' does not match any of the regexes: '{EVIL}'" in error


def test_pattern_properties_and_additional_properties_keep_their_meaning() -> None:
    schema = {
        "type": "object",
        "properties": {"id": {"type": "string"}},
        "patternProperties": {"^x-": {"type": "integer"}},
        "additionalProperties": {"type": "boolean"},
    }
    assert check_answer(schema, '{"id": "a", "x-one": 1, "flag": true}').valid
    wrong = check_answer(schema, '{"id": "a", "x-one": "1", "flag": 2}')
    assert wrong.problems == [
        "at $.flag: 2 is not of type 'boolean'",
        "at $['x-one']: '1' is not of type 'integer'",
    ]
    closed = {**schema, "additionalProperties": False}
    assert check_answer(closed, '{"x-a": 1, "y": 2, "z": 3}').problems == [
        "at $: 'y', 'z' do not match any of the regexes: '^x-'"
    ]
    assert check_answer({"propertyNames": {"pattern": "^[a-z]+$"}}, '{"Ab": 1}').problems == [
        "at $: 'Ab' does not match '^[a-z]+$'"
    ]


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "string", "pattern": "^(?=a)"}, r"pattern '\^\(\?=a\)' .*lookaround"),
        ({"patternProperties": {r"(a)\1": {}}}, r"pattern '\(a\)\\\\1' .*backreferences"),
        (
            {"type": "object", "patternProperties": {"^x": {}}, "unevaluatedProperties": False},
            "unevaluatedProperties beside patternProperties",
        ),
    ],
)
def test_a_pattern_that_needs_backtracking_is_refused_at_submit(
    schema: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        AgentSpec(name="x", output_schema=schema)
