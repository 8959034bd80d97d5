"""A request refused for its cache hints, against the local wire servers made to refuse them:
each resend is an attempt of its own under the provider pool, and a refusal is remembered only
for the field the provider named, on the model that refused it."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import redis

from orchestrator.config.settings import PoolLimit, Settings
from orchestrator.local import LocalRedis
from orchestrator.models import ModelConfig
from orchestrator.plans.cache_store import CachePlanStore
from orchestrator.state.keys import rate_key
from tests.cache_governor.test_cache_governor_rules import (
    CONFIG,
    INSTRUCTIONS,
    SONNET,
    call,
    governed,
    learn,
)
from tests.helpers import environment
from tests.servers.cache_servers import AnthropicCacheServer, CacheServer, OpenAIChatCacheServer
from tests.servers.cache_wire import anthropic_prompt
from workers.cache.governed import CacheContext, GovernedSurface
from workers.cache.refusals import ResendWithoutHints
from workers.providers import ModelProvider, get_provider
from workers.providers.pooled import PooledProvider

HINTS = ("prompt_cache_key", "prompt_cache_retention")


def pooled(
    server: CacheServer, config: ModelConfig, agent_id: str, plans: CachePlanStore, pool: str
) -> ModelProvider:
    """The worker's stack for an ``apply`` call: the governor inside a per-minute pool."""
    context = CacheContext(agent_id, "apply", f"conversation-{uuid4().hex}")
    limits = {pool: PoolLimit(max_concurrent=4, rpm=1000)}

    def attempt(surface: object) -> ModelProvider:
        governed = GovernedSurface(surface, context, plans.get, CONFIG)  # type: ignore[arg-type]
        return ResendWithoutHints(PooledProvider(governed, plans.client, limits, 30.0))

    return get_provider(server.provider, Settings(), attempt)  # type: ignore[arg-type]


def test_a_model_refusing_retention_keeps_its_key_and_costs_no_other_model(
    redis_server: LocalRedis,
) -> None:
    plans = CachePlanStore(redis.Redis.from_url(redis_server.url))
    server = OpenAIChatCacheServer(model_refuses={"gpt-5.1": {"prompt_cache_retention"}})
    endpoint = f"refusals-{uuid4().hex[:8]}"
    question = INSTRUCTIONS + "What is 2 + 3?"
    with environment(server.worker_env(endpoint)):
        refusing = ModelConfig(provider="openai", model="gpt-5.1", endpoint=endpoint)
        other = ModelConfig(provider="openai", model="gpt-5", endpoint=endpoint)
        # Calls ten minutes apart: the 24 h retention pays for both models.
        apart = timedelta(minutes=10)
        refusing_agent = learn(server, refusing, [question] * 5, apart, plans)
        other_agent = learn(server, other, [question] * 5, apart, plans)
        first = len(server.received)
        response = call(
            governed(server, refusing, refusing_agent, "apply", plans), refusing, question
        )
        hinted, keyed = server.received[first:]
        assert set(HINTS) <= hinted.keys()
        # Sent again without the retention only: the key still serves the cache.
        assert keyed["prompt_cache_key"] == hinted["prompt_cache_key"]
        assert "prompt_cache_retention" not in keyed
        assert response.cache is not None and response.cache.refused
        assert response.cache.cache_key == keyed["prompt_cache_key"]
        assert response.cache.retention is None
        # Remembered for that model and field: its next call sends the key alone, at once.
        call(governed(server, refusing, refusing_agent, "apply", plans), refusing, question)
        assert len(server.received) == first + 3
        assert server.received[-1]["prompt_cache_key"]
        assert "prompt_cache_retention" not in server.received[-1]
        # Another model on the same endpoint still gets both fields.
        taken = call(governed(server, other, other_agent, "apply", plans), other, question)
        assert len(server.received) == first + 4 and set(HINTS) <= server.received[-1].keys()
        assert taken.cache is not None and not taken.cache.refused
    server.close()


def test_each_send_of_a_refused_request_takes_its_own_pool_slot(
    private_redis: LocalRedis,
) -> None:
    plans = CachePlanStore(redis.Redis.from_url(private_redis.url))
    server = OpenAIChatCacheServer(refuses=HINTS)
    endpoint = f"refusals-{uuid4().hex[:8]}"
    question = INSTRUCTIONS + "What is 2 + 3?"
    with environment(server.worker_env(endpoint)):
        config = ModelConfig(provider="openai", model="gpt-5", endpoint=endpoint)
        agent_id = learn(server, config, [question] * 5, timedelta(seconds=20), plans)
        first = len(server.received)
        response = call(pooled(server, config, agent_id, plans, "openai"), config, question)
    server.close()
    assert len(server.received) == first + 2 and response.cache and response.cache.refused
    # Both sends counted against the per-minute limit.
    assert plans.client.zcard(rate_key("provider:openai")) == 2


def test_an_anthropic_refusal_is_remembered_and_each_send_takes_a_slot(
    private_redis: LocalRedis,
) -> None:
    plans = CachePlanStore(redis.Redis.from_url(private_redis.url))
    # An Anthropic-compatible endpoint without the 1 h lifetime.
    server = AnthropicCacheServer(ttl_s={"5m": 300.0})
    endpoint = f"refusals-{uuid4().hex[:8]}"
    with environment(server.worker_env(endpoint)):
        config = ModelConfig(provider="anthropic", model=SONNET, endpoint=endpoint)
        question = INSTRUCTIONS + "What is 2 + 3?"
        agent_id = learn(server, config, [question] * 20, timedelta(minutes=10), plans)
        first = len(server.received)
        response = call(pooled(server, config, agent_id, plans, "anthropic"), config, question)
        hinted, plain = server.received[first:]
        assert anthropic_prompt(hinted)[1] and not anthropic_prompt(plain)[1]
        assert response.cache is not None and response.cache.refused
        assert plans.client.zcard(rate_key("provider:anthropic")) == 2
        # Remembered for the endpoint's model: the next call is sent once, without hints.
        again = call(pooled(server, config, agent_id, plans, "anthropic"), config, question)
        assert len(server.received) == first + 3 and not anthropic_prompt(server.received[-1])[1]
        assert again.cache is None
    server.close()
