"""Structured outputs end to end: a real worker asks a local OpenAI Chat Completions server
(which refuses what strict mode refuses) for typed answers, validates them, retries an invalid
one within the run's budget, and a ``@reducer`` sums them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from pydantic import BaseModel

from orchestrator import AgentSpec, Budget, Client, ModelConfig
from orchestrator.local import LocalRedis, LocalWorker, wait_for_workers
from tests.servers.structured_wire import ChatServer, last_user, strict_violations

RETRY = "does not match the required JSON Schema"


class Extracted(BaseModel):
    invoice: str
    total: float
    currency: str | None = None


def answer(body: dict[str, Any]) -> str:
    """The local model: it reads the item's amount; an item marked ``sloppy`` is first answered
    in prose (an invalid answer), and properly once told what was wrong."""
    prompt = last_user(body)
    if RETRY in prompt:
        prompt = next(m["content"] for m in body["messages"] if m["role"] == "user")
    elif "sloppy" in prompt:
        return "The total is 7 euros."
    item = json.loads(prompt.split("Process this item: ", 1)[1])
    if item.get("never"):
        return "I cannot read it."
    return json.dumps({"invoice": item["id"], "total": float(item["amount"]), "currency": "EUR"})


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, ChatServer]]:
    server = ChatServer(answer)
    local = LocalRedis()
    env = {
        "ORCHESTRATOR_REDIS_URL": local.url,
        "ORCHESTRATOR_ENDPOINTS": server.endpoints("wire"),
        "ORCHESTRATOR_MODULES": "tests.registered.reducers",
        "ORCHESTRATOR_PRICES": json.dumps({"openai:gpt-test": {"input": 1.0, "output": 2.0}}),
        "OPENAI_API_KEY": "sk-local-test",
    }
    log = tmp_path_factory.mktemp("wire") / "worker.log"
    worker = LocalWorker("wire", env, concurrency=4, log_path=log)
    try:
        wait_for_workers(redis.Redis.from_url(local.url), [worker.hostname])
        yield Client(redis_url=local.url), server
    finally:
        worker.stop()
        local.stop()
        server.close()


def mapper(retries: int = 2) -> AgentSpec:
    model = ModelConfig(provider="openai", model="gpt-test", endpoint="wire")
    return AgentSpec(name="extract", model=model, output_schema=Extracted, output_retries=retries)


def calls_for(server: ChatServer, invoice: str) -> list[dict[str, Any]]:
    first = re.compile(rf'"id":"{invoice}"')
    return [b for b in server.requests if any(first.search(m["content"]) for m in b["messages"])]


def test_an_invalid_then_valid_answer_is_two_calls_and_a_reducer_sums_the_data(
    wire: tuple[Client, ChatServer],
) -> None:
    client, server = wire
    items = [
        {"id": "A-1", "amount": "3.50"},
        {"id": "A-2", "amount": "7", "note": "sloppy"},
        {"id": "A-3", "amount": "10.25"},
    ]
    handle = client.map_reduce(
        "Extract the invoice", items, mapper(), "sum_totals", budget=Budget(max_tokens=100_000)
    )
    result = handle.result(60)
    assert [o.outcome for o in result.map_outputs] == ["ok", "ok", "ok"]
    assert [o.parsed(Extracted).total for o in result.map_outputs] == [3.5, 7.0, 10.25]
    assert [o.turns for o in result.map_outputs] == [1, 2, 1]
    assert result.reduced_data == {"task": "Extract the invoice", "count": 3, "total": 20.75}
    sloppy = calls_for(server, "A-2")
    assert len(sloppy) == 2
    assert RETRY in sloppy[1]["messages"][-1]["content"]
    for body in sloppy:  # every call asked natively, with a schema strict mode takes
        fmt = body["response_format"]["json_schema"]
        assert fmt["strict"] is True and strict_violations(fmt["schema"]) == []
    ledger = handle.budget()
    assert ledger.calls == 4  # every call, the retry too, under the run's budget
    assert ledger.spent_tokens == sum(o.tokens.total_tokens for o in result.map_outputs)


def test_an_answer_that_never_validates_is_an_error_after_one_plus_retries_calls(
    wire: tuple[Client, ChatServer],
) -> None:
    client, server = wire
    items = [{"id": "B-1", "amount": "1", "never": True}]
    handle = client.map_reduce(
        "t", items, mapper(retries=1), "outcomes", budget=Budget(max_tokens=10**6)
    )
    result = handle.result(60)
    (output,) = result.map_outputs
    assert output.outcome == "error"
    assert output.error is not None
    assert output.error.startswith("output_schema: no valid answer in 2 model call(s)")
    assert len(calls_for(server, "B-1")) == 2
    assert handle.budget().calls == 2
    assert result.reduced_data == ["error"]
