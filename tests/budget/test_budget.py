"""The budget is a hard limit: every model call reserves its upper bound before it is made, so
what a run spends never passes ``max_tokens`` or ``max_cost_usd``, whatever the concurrency;
a call that does not fit is not made; the calls of every execution count."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
import redis

from orchestrator import AgentRunResult, Client, RunHandle
from orchestrator.config.settings import Settings
from orchestrator.errors import RunFailedError
from orchestrator.local import LocalRedis
from orchestrator.models import AgentOutput, AgentSpec, Budget, ModelConfig
from orchestrator.models.requests import MapReduceRequest
from orchestrator.state.budget import RunBudget
from orchestrator.state.events import AgentStart
from orchestrator.state.keys import RunKeys
from orchestrator.state.store import RunStore
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, local_endpoints, scripted, start_workers
from tests.servers.fake_api import FakeAPI

# A scripted mapper here uses about 25 tokens (its exact input, plus an answer cut at 16) and
# reserves its input plus 16: a budget of 125 tokens fits about five of them.
FIVE_AGENTS_TOKENS = 125


@pytest.mark.parametrize("round_", range(3))
def test_racing_members_never_spend_past_max_tokens(client: Client, round_: int) -> None:
    mapper = scripted("mapper", max_output_tokens=16, latency_ms=30, jitter_ms=30, seed=round_)
    handle = client.map_reduce(
        "Race",
        items(40),
        mapper,
        scripted("reducer", max_output_tokens=16),
        20,
        budget=Budget(max_tokens=FIVE_AGENTS_TOKENS),
    )
    result = handle.result(60)
    ran = [o for o in result.map_outputs if o.outcome == "ok"]
    assert len(ran) >= 2, "the budget is usable: several agents ran"
    assert any(o.outcome == "skipped" for o in result.map_outputs)
    reducer = result.reducer_output.tokens.total_tokens if result.reducer_output else 0
    spent = sum(o.tokens.total_tokens for o in result.map_outputs) + reducer
    ledger = handle.budget()
    assert spent == ledger.spent_tokens
    assert ledger.spent_tokens <= FIVE_AGENTS_TOKENS
    assert ledger.reserved_tokens == 0


@pytest.mark.parametrize("round_", range(2))
def test_racing_members_never_spend_past_max_cost(client: Client, round_: int) -> None:
    # $0.01 per 1k tokens: a mapper costs about $0.00025, so $0.00125 fits about five.
    mapper = scripted(
        "mapper", max_output_tokens=16, latency_ms=30, jitter_ms=30, seed=round_,
        cost_per_1k_tokens=0.01,
    )  # fmt: skip
    handle = client.map_reduce(
        "Race",
        items(40),
        mapper,
        scripted("reducer", max_output_tokens=16, cost_per_1k_tokens=0.01),
        20,
        budget=Budget(max_cost_usd=0.00125),
    )
    result = handle.result(60)
    assert sum(o.outcome == "ok" for o in result.map_outputs) >= 2
    reducer = result.reducer_output.tokens.cost_usd if result.reducer_output else 0.0
    spent = sum(o.tokens.cost_usd for o in result.map_outputs) + reducer
    assert spent <= 0.00125 + 1e-12
    assert handle.budget().spent_usd <= 0.00125


def test_reservations_racing_in_redis_never_pass_the_limit(redis_server: LocalRedis) -> None:
    """Sixteen threads reserve and settle calls of random sizes as fast as they can: at no
    moment do spent and reserved pass the limit (each thread checks what it was granted)."""
    store = RunStore(redis.Redis.from_url(redis_server.url), Settings(redis_url=redis_server.url))
    run_id = uuid4().hex
    request = MapReduceRequest(
        task="race",
        mapper=scripted("m", max_output_tokens=8),
        reducer=scripted("r"),
        item_count=16,
        max_concurrent=16,
        budget=Budget(max_tokens=5_000),
    )
    store.create_run(run_id, request, [str(i) for i in range(16)])
    admitted = store.start(run_id, "node").admitted
    start_event = AgentStart(run_id=run_id, name="m")
    tokens = {m: uuid4().hex for m in map(str, admitted)}
    for member, token in tokens.items():
        assert store.claim(run_id, member, token, 60, start_event).action == "run"
    budget = RunBudget(store.client, run_id)
    granted: list[int] = []
    used: list[int] = []
    lock = threading.Lock()

    def member(name: str, token: str) -> None:
        rng = random.Random(name)
        for n in range(60):
            bound = rng.randint(50, 400)
            verdict, _ = budget.reserve(name, token, f"{token}/{n}", bound, 0)
            if verdict == "ok":
                usage = rng.randint(bound // 2, bound)
                with lock:
                    granted.append(bound)
                    used.append(usage)
                time.sleep(rng.uniform(0, 0.003))  # a call in flight, overlapping others
                budget.settle(f"{token}/{n}", usage, 0)

    threads = [threading.Thread(target=member, args=pair) for pair in tokens.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ledger = budget.ledger()
    assert granted, "calls were made"
    assert ledger.spent_tokens == sum(used) <= 5_000
    assert ledger.reserved_tokens == 0


def test_an_execution_that_lost_its_lease_still_pays_for_its_calls(
    redis_server: LocalRedis,
) -> None:
    """A duplicate execution's calls count: the one taken over mid-call is charged at its
    reservation when the watchdog takes its lease, and the new one's calls settle as usual."""
    settings = Settings(redis_url=redis_server.url, lease_s=1)
    store = RunStore(redis.Redis.from_url(redis_server.url), settings)
    run_id = uuid4().hex
    request = MapReduceRequest(
        task="dup", mapper=scripted("m"), reducer=scripted("r"), item_count=1,
        budget=Budget(max_tokens=100_000),
    )  # fmt: skip
    store.create_run(run_id, request, ["0"])
    store.start(run_id, "node")
    start_event = AgentStart(run_id=run_id, name="m_0", index=0)
    budget = RunBudget(store.client, run_id)
    assert store.claim(run_id, "0", "first", 60, start_event).action == "run"
    assert budget.reserve("0", "first", "first/0", 700, 0)[0] == "ok"
    # The first execution hangs past its lease: the watchdog hands the member on.
    store.client.zadd(RunKeys(run_id).leases, {"0": 0})
    assert store.sweep(run_id, "node").republish == ["0"]
    assert store.claim(run_id, "0", "second", 60, start_event).action == "run"
    assert budget.reserve("0", "second", "second/0", 700, 0)[0] == "ok"
    assert budget.settle("second/0", 40, 0)
    # The first execution wakes: it may make no new call, and its late settle changes nothing.
    assert budget.reserve("0", "first", "first/1", 700, 0)[0] == "lost"
    assert not budget.settle("first/0", 30, 0)
    ledger = budget.ledger()
    assert ledger.spent_tokens == 700 + 40 and ledger.calls == 2
    assert ledger.reserved_tokens == 0


@pytest.fixture
def api_worker(private_redis: LocalRedis, tmp_path: Path) -> Iterator[tuple[FakeAPI, Client]]:
    """A worker whose ``openai`` endpoint ``test-openai`` is a local server counting calls."""
    api = FakeAPI()
    env = {
        **FAST_TIMINGS,
        "ORCHESTRATOR_REDIS_URL": private_redis.url,
        "ORCHESTRATOR_ENDPOINTS": local_endpoints(api.port),
        "OPENAI_API_KEY": "sk-budget-test",
    }
    (worker,) = start_workers(env, ["budget-api"], tmp_path, 2)
    try:
        yield api, Client(redis_url=private_redis.url)
    finally:
        worker.stop()
        api.close()


def echo_call(text: str) -> dict[str, object]:
    """A Chat Completions reply asking for the ``echo`` tool with ``text``."""
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "echo", "arguments": f'{{"text": "{text}"}}'},
    }
    return {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {"role": "assistant", "content": None, "tool_calls": [call]},
            }
        ],
        "usage": {"prompt_tokens": 300, "completion_tokens": 2000, "total_tokens": 2300},
    }


def failed_output(handle: RunHandle[AgentRunResult]) -> AgentOutput:
    """The output of a single-agent run that failed (as it does when its agent does not end
    ``ok``)."""
    with pytest.raises(RunFailedError) as failed:
        handle.result(60)
    result = failed.value.result
    assert isinstance(result, AgentRunResult)
    return result.output


def http_agent() -> AgentSpec:
    model = ModelConfig(
        provider="openai", model="m", endpoint="test-openai", max_output_tokens=2000
    )
    return AgentSpec(name="worker", model=model, tools=["echo"])


def test_a_second_turn_that_does_not_fit_is_not_made(api_worker: tuple[FakeAPI, Client]) -> None:
    api, client = api_worker
    # The first call reserves its request (about 2k tokens with the tool's prompt) plus 2,000;
    # the second carries 6,000 more characters each way (the call and its result).
    api.reply(echo_call("x" * 6000))
    handle = client.run_agent(http_agent(), "Echo a lot.", budget=Budget(max_tokens=9_000))
    output = failed_output(handle)
    assert output.outcome == "error"
    assert output.error is not None and output.error.startswith("budget: max_tokens (9000 tokens)")
    assert output.turns == 1 and output.tool_calls == 1
    assert len(api.requests) == 1, "the second call was never sent"
    ledger = handle.budget()
    assert ledger.spent_tokens == 2300 and ledger.reserved_tokens == 0


def test_a_first_call_that_does_not_fit_skips_the_agent(
    api_worker: tuple[FakeAPI, Client],
) -> None:
    api, client = api_worker
    handle = client.run_agent(http_agent(), "Hello.", budget=Budget(max_tokens=2_500))
    output = failed_output(handle)
    assert output.outcome == "skipped" and output.turns == 0
    assert output.error is not None and "does not fit" in output.error
    assert api.requests == []
    assert handle.budget().spent_tokens == 0
