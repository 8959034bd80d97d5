"""Prices: genai-prices' list for the models it knows, ORCHESTRATOR_PRICES winning over it,
cache reads and writes billed as each provider bills them, a bound for reservations that no
call within it exceeds, and no cost budget on a model without a price."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import genai_prices
import pytest
from genai_prices import data_snapshot
from genai_prices.types import ConditionalPrice, ModelInfo, TieredPrices
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import AgentSpec, Budget, Client, InvalidRunError, ModelConfig
from orchestrator.config.settings import Price, Settings
from orchestrator.local import LocalRedis, LocalWorker
from orchestrator.models import Usage
from orchestrator.prices import call_cost, cost_bound, price_known
from tests.client.test_bad_input import dispatched
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, local_endpoints, scripted, start_workers
from tests.servers.fake_api import FakeAPI

GPT_4O = ModelConfig(provider="openai", model="gpt-4o")
SONNET = ModelConfig(provider="anthropic", model="claude-sonnet-4-5")
UNLISTED = ModelConfig(provider="openai", model="my-finetune")


def listed(model: str, provider_id: str) -> Decimal:
    """genai-prices' own figure for a call, through its public ``calc_price``."""
    usage = genai_prices.Usage(input_tokens=1200, cache_read_tokens=400, output_tokens=300)
    return genai_prices.calc_price(usage, model, provider_id=provider_id).total_price


# What genai-prices lists (USD per million tokens): gpt-4o 2.5 input, 1.25 cached input, 10
# output; claude-sonnet-4-5 3 input, 0.3 cache read, 3.75 cache write, 15 output, and above
# 200k prompt tokens 6, 0.6, 7.5 and 22.5.


@pytest.mark.parametrize("provider", ["openai", "openai_responses"])
def test_openai_cached_tokens_are_part_of_the_input_and_cost_the_cached_price(
    provider: str,
) -> None:
    config = ModelConfig(provider=provider, model="gpt-4o")
    usage = Usage(input_tokens=1200, cached_tokens=400, output_tokens=300)
    expected = (800 * 2.5 + 400 * 1.25 + 300 * 10) / 1e6
    assert call_cost(config, usage) == pytest.approx(expected)
    assert call_cost(config, usage) == pytest.approx(float(listed("gpt-4o", "openai")))


def test_genai_prices_matches_a_dated_model_name() -> None:
    dated = ModelConfig(provider="openai", model="gpt-4o-2024-08-06")
    usage = Usage(input_tokens=1000, output_tokens=100)
    assert price_known(dated)
    assert call_cost(dated, usage) == call_cost(GPT_4O, usage) == pytest.approx(0.0035)


def test_anthropic_cache_reads_and_writes_come_beside_the_input_at_their_prices() -> None:
    usage = Usage(
        input_tokens=1000,
        cache_read_input_tokens=3000,
        cache_creation_input_tokens=500,
        output_tokens=200,
    )
    expected = (1000 * 3 + 3000 * 0.3 + 500 * 3.75 + 200 * 15) / 1e6
    assert call_cost(SONNET, usage) == pytest.approx(expected)


def test_a_prompt_over_200k_tokens_with_its_cache_reads_pays_claudes_higher_tier() -> None:
    # 150k uncached tokens alone are under the tier; with the 60k read from the cache, the
    # whole prompt is over it, and Anthropic bills every token at the higher rate.
    usage = Usage(input_tokens=150_000, cache_read_input_tokens=60_000, output_tokens=200)
    expected = (150_000 * 6 + 60_000 * 0.6 + 200 * 22.5) / 1e6
    assert call_cost(SONNET, usage) == pytest.approx(expected)


def test_the_service_tier_option_selects_its_price() -> None:
    priority = ModelConfig(provider="openai", model="gpt-4o", options={"service_tier": "priority"})
    usage = Usage(input_tokens=1000, cached_tokens=200, output_tokens=100)
    # genai-prices' priority prices for gpt-4o: 4.25 input, 2.125 cached, 17 output.
    assert call_cost(priority, usage) == pytest.approx((800 * 4.25 + 200 * 2.125 + 100 * 17) / 1e6)


@pytest.fixture
def gpt_4o_overridden(monkeypatch: pytest.MonkeyPatch) -> dict[str, Price]:
    """The prices of settings with ORCHESTRATOR_PRICES holding its own price for gpt-4o, which
    genai-prices also lists."""
    prices = {"openai:gpt-4o": {"input": 1.0, "output": 4.0, "cached_input": 0.25}}
    monkeypatch.setenv("ORCHESTRATOR_PRICES", json.dumps(prices))
    return Settings().prices


def test_an_orchestrator_prices_entry_wins_over_genai_prices(
    gpt_4o_overridden: dict[str, Price],
) -> None:
    usage = Usage(input_tokens=1200, cached_tokens=400, output_tokens=300)
    cost = call_cost(GPT_4O, usage, overrides=gpt_4o_overridden)
    assert cost == pytest.approx((800 * 1.0 + 400 * 0.25 + 300 * 4.0) / 1e6)
    bound = cost_bound(GPT_4O, 1200, 300, overrides=gpt_4o_overridden)
    assert bound == pytest.approx((1200 * 1.0 + 300 * 4.0) / 1e6)


@pytest.mark.parametrize(
    "config",
    [UNLISTED, ModelConfig(provider="openai", model="claude-sonnet-4-5")],
    ids=["unlisted", "another-providers-model"],
)
def test_a_model_genai_prices_does_not_list_for_its_provider_has_no_price(
    config: ModelConfig,
) -> None:
    assert not price_known(config)
    assert call_cost(config, Usage(input_tokens=10, output_tokens=10)) is None
    assert cost_bound(config, 10, 10) is None


def test_scripted_costs_its_cost_per_1k_tokens_option_and_is_free_without_it() -> None:
    usage = Usage(input_tokens=300, output_tokens=100)
    priced = ModelConfig(provider="scripted", options={"cost_per_1k_tokens": 2.0})
    assert call_cost(priced, usage) == pytest.approx(400 * 2.0 / 1000)
    assert cost_bound(priced, 300, 100) == pytest.approx(400 * 2.0 / 1000)
    free = ModelConfig(provider="scripted")
    assert price_known(free) and call_cost(free, usage) == 0.0


def test_the_bound_counts_every_prompt_token_at_the_highest_price_of_any_kind_and_tier() -> None:
    # Sonnet's highest prompt price is a cache write above 200k tokens, 7.5; its output, 22.5.
    assert cost_bound(SONNET, 1000, 100) == pytest.approx((1000 * 7.5 + 100 * 22.5) / 1e6)
    # gpt-4o's cached input is cheaper than its input, so input is the highest.
    assert cost_bound(GPT_4O, 1000, 100) == pytest.approx((1000 * 2.5 + 100 * 10) / 1e6)


def tier_starts(model: ModelInfo) -> set[int]:
    """The prompt sizes above which any of the model's prices (in force now or not) changes."""
    prices = model.prices if isinstance(model.prices, list) else [model.prices]
    return {
        tier.start
        for price in prices
        for value in vars(price.prices if isinstance(price, ConditionalPrice) else price).values()
        if isinstance(value, TieredPrices)
        for tier in value.tiers
    }


def listed_models() -> list[tuple[ModelConfig, set[int]]]:
    """Every model genai-prices lists for OpenAI and Anthropic, under each of our providers,
    with its tier starts."""
    ours = {"openai": ["openai", "openai_responses"], "anthropic": ["anthropic"]}
    found = [
        (ModelConfig(provider=provider, model=model.id), tier_starts(model))
        for entry in data_snapshot.get_snapshot().providers
        for model in entry.models
        for provider in ours.get(entry.id, [])
    ]
    # A few ids do not match their own model's rule (ft:gpt-4o matches ft:gpt-4o-2024-...).
    return [(config, starts) for config, starts in found if price_known(config)]


MODELS = listed_models()
LISTED = [config for config, _ in MODELS]
TIERED = [config for config, starts in MODELS if starts]
# Prompt sizes just over each tier start, where the price changes for the whole prompt.
OVER_A_TIER = sorted({start + 1 for _, starts in MODELS for start in starts})
OVERRIDE_PRICES = st.builds(
    Price,
    input=st.floats(0, 100),
    output=st.floats(0, 100),
    cached_input=st.none() | st.floats(0, 100),
    cache_write=st.none() | st.floats(0, 100),
)


@st.composite
def priced_model(draw: st.DrawFn) -> tuple[ModelConfig, dict[str, Price]]:
    """A model with a price: listed (with a service tier, maybe), overridden, or scripted."""
    kind = draw(st.sampled_from(["listed", "override", "scripted"]))
    if kind == "scripted":
        cost = draw(st.floats(0, 100))
        return ModelConfig(provider="scripted", options={"cost_per_1k_tokens": cost}), {}
    if kind == "override":
        provider = draw(st.sampled_from(["openai", "openai_responses", "anthropic"]))
        config = ModelConfig(provider=provider, model=draw(st.sampled_from(["gpt-4o", "mine"])))
        return config, {f"{provider}:{config.model}": draw(OVERRIDE_PRICES)}
    # Tiered models are a few among many: drawn apart, so that prompts over a tier are common.
    config = draw(st.sampled_from(TIERED) | st.sampled_from(LISTED))
    tier = draw(st.sampled_from([None, "default", "flex", "priority"]))
    if tier is not None:
        config = config.model_copy(update={"options": {"service_tier": tier}})
    return config, {}


@st.composite
def usage_within(draw: st.DrawFn, provider: str, prompt: int, output: int) -> Usage:
    """A usage of at most ``prompt`` prompt tokens, reported as ``provider`` reports it."""
    # The whole limit is the case that matters most; Hypothesis would rarely draw it alone.
    total = draw(st.just(prompt) | st.integers(0, prompt))
    if provider == "anthropic":
        read = draw(st.integers(0, total))
        write = draw(st.integers(0, total - read))
        return Usage(
            input_tokens=total - read - write,
            cache_read_input_tokens=read,
            cache_creation_input_tokens=write,
            output_tokens=draw(st.integers(0, output)),
        )
    return Usage(
        input_tokens=total,
        cached_tokens=draw(st.integers(0, total)),
        output_tokens=draw(st.integers(0, output)),
    )


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_no_call_within_the_bound_costs_more_than_the_bound(data: st.DataObject) -> None:
    config, overrides = data.draw(priced_model())
    prompt = data.draw(st.sampled_from(OVER_A_TIER) | st.integers(0, 2 * OVER_A_TIER[-1]))
    output = data.draw(st.integers(0, 100_000))
    usage = data.draw(usage_within(config.provider, prompt, output))
    bound = cost_bound(config, prompt, output, overrides=overrides)
    cost = call_cost(config, usage, overrides=overrides)
    assert bound is not None and cost is not None
    assert cost <= bound


# Prices the priced worker and its client share: one for a model genai-prices lists (gpt-4.1:
# 2 input, 0.5 cached, 8 output there), one for a model it does not.
OVERRIDES = {
    "openai:gpt-4.1": {"input": 1.0, "output": 4.0, "cached_input": 0.25},
    "openai:my-finetune": {"input": 3.0, "output": 12.0, "cached_input": 1.5},
}


@pytest.fixture(scope="module")
def priced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, FakeAPI]]:
    """A worker whose OpenAI endpoint is a local server, with OVERRIDES as its
    ORCHESTRATOR_PRICES, and a client with the same prices."""
    api = FakeAPI()
    server = LocalRedis()
    env = {
        **FAST_TIMINGS,
        "ORCHESTRATOR_REDIS_URL": server.url,
        "ORCHESTRATOR_ENDPOINTS": local_endpoints(api.port),
        "ORCHESTRATOR_PRICES": json.dumps(OVERRIDES),
        "OPENAI_API_KEY": "sk-test",
    }
    worker: LocalWorker | None = None
    try:
        (worker,) = start_workers(env, ["priced"], tmp_path_factory.mktemp("priced"), 2)
        client = Client(redis_url=server.url, settings=Settings(prices=OVERRIDES))
        yield client, api
    finally:
        if worker is not None:
            worker.stop()
        server.stop()
        api.close()


def answer(model: str, prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> Any:
    """A Chat Completions answer reporting this usage."""
    return {
        "id": "chatcmpl-priced",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens},
        },
    }


def run_on(client: Client, api: FakeAPI, model: str) -> tuple[float, float]:
    """One budgeted agent run on ``model`` through the local server, which reports 1,200
    prompt tokens (400 of them cached) and 300 output tokens; the agent's cost, and what the
    run's budget ledger counted."""
    api.reply(answer(model, 1200, 400, 300))
    spec = AgentSpec(
        name="priced", model=ModelConfig(provider="openai", model=model, endpoint="test-openai")
    )
    handle = client.run_agent(spec, "Price this.", budget=Budget(max_cost_usd=1.0))
    output = handle.result(timeout=60).output
    assert output.outcome == "ok", output.error
    return output.tokens.cost_usd, handle.budget().spent_usd


def test_a_listed_model_costs_what_genai_prices_says_end_to_end(
    priced: tuple[Client, FakeAPI],
) -> None:
    cost, counted = run_on(*priced, "gpt-4o")
    expected = float(listed("gpt-4o", "openai"))
    assert expected == pytest.approx((800 * 2.5 + 400 * 1.25 + 300 * 10) / 1e6)
    assert cost == pytest.approx(expected)
    assert counted == pytest.approx(expected)


@pytest.mark.parametrize("model", ["gpt-4.1", "my-finetune"])
def test_an_orchestrator_prices_entry_prices_a_run_end_to_end(
    priced: tuple[Client, FakeAPI], model: str
) -> None:
    price = Price.model_validate(OVERRIDES[f"openai:{model}"])
    assert price.cached_input is not None
    expected = (800 * price.input + 400 * price.cached_input + 300 * price.output) / 1e6
    cost, counted = run_on(*priced, model)
    assert cost == pytest.approx(expected)
    assert counted == pytest.approx(expected)


def test_rounding_never_puts_a_cost_above_its_bound() -> None:
    # Summed in floats, this call would cost 0.008844800000000002 against a bound of 0.0088448.
    overrides = {"openai:mine": Price(input=1.1, output=0.7)}
    config = ModelConfig(provider="openai", model="mine")
    usage = Usage(input_tokens=6999, cached_tokens=3088, output_tokens=1637)
    cost = call_cost(config, usage, overrides=overrides)
    bound = cost_bound(config, 6999, 1637, overrides=overrides)
    assert cost is not None and bound is not None
    assert cost <= bound


@pytest.fixture
def bare_client(redis_server: LocalRedis, worker_env: dict[str, str]) -> Client:
    """A client with no workers: nothing it submits could run anyway."""
    return Client(redis_url=redis_server.url)


def unpriced(name: str) -> dict[str, Any]:
    return {"name": name, "model": {"provider": "openai", "model": "my-finetune"}}


BUDGET = {"max_cost_usd": 1.0}


@pytest.mark.parametrize(
    "submit",
    [
        lambda c: c.map_reduce("t", items(2), unpriced("m"), scripted("r"), budget=BUDGET),
        lambda c: c.map_reduce("t", items(2), scripted("m"), unpriced("r"), budget=BUDGET),
        lambda c: c.parallel_branches([scripted("a"), unpriced("b")], "p", budget=BUDGET),
        lambda c: c.parallel_branches(
            [scripted("a")], "p", strategy="llm_judge", judge=unpriced("j"), budget=BUDGET
        ),
        lambda c: c.run_agent(unpriced("a"), "p", budget=BUDGET),
    ],
    ids=["mapper", "reducer", "branch", "judge", "agent"],
)
def test_a_cost_budget_with_a_model_without_a_price_is_refused_before_dispatch(
    bare_client: Client, redis_server: LocalRedis, submit: Any
) -> None:
    before = dispatched(redis_server)
    with pytest.raises(InvalidRunError) as refused:
        submit(bare_client)
    assert str(refused.value) == (
        "budget.max_cost_usd needs a price for openai:my-finetune; none is known "
        "(add it to ORCHESTRATOR_PRICES)"
    )
    assert dispatched(redis_server) == before
