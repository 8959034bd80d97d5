"""The governor keeps to each provider's rules for what it adds, against the local wire servers
made to enforce them: the Anthropic server refuses a 1 h breakpoint after a 5 min one, and an
OpenAI-compatible server refuses hint fields it does not know. Plans come from the real cache
learner, fed the records of calls made through the real SDKs, timed as the case needs."""

from __future__ import annotations

import inspect
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
import redis

from learners.ingest import ingest_records
from orchestrator.config.governor import CacheGovernorConfig
from orchestrator.config.settings import Settings
from orchestrator.local import LocalRedis
from orchestrator.models import CallRecord, Message, ModelConfig, RunRecord
from orchestrator.plans.cache_plans import CachePlan
from orchestrator.plans.cache_store import CachePlanStore
from orchestrator.plans.store import PlanStore
from tests.helpers import environment
from tests.servers.cache_servers import AnthropicCacheServer, CacheServer, OpenAIChatCacheServer
from tests.servers.cache_wire import anthropic_prompt
from tests.servers.openai_cache_servers import OpenAIResponsesCacheServer
from workers.cache.governed import CacheContext, GovernedSurface
from workers.cache.refusals import ResendWithoutHints
from workers.execution.cancellation import CancelToken
from workers.providers import ModelProvider, ModelResponse, ProviderError, get_provider

CONFIG = CacheGovernorConfig()
SONNET = "claude-sonnet-4-5"
# About 1,500 tokens: above every model's minimum cacheable length.
INSTRUCTIONS = "You add numbers with the add tool, then answer. " * 125
CALLER_5M = {"type": "ephemeral"}  # the caller's own marker: Anthropic's default, 5 minutes
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def cache_plans(redis_server: LocalRedis) -> CachePlanStore:
    return CachePlanStore(redis.Redis.from_url(redis_server.url))


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[tuple[CacheServer, str]]:
    """The server the test names (``pytest.mark.parametrize(..., indirect=True)``), declared
    as an endpoint of a name of its own for the test."""
    server: CacheServer = request.param()
    endpoint = f"rules-{uuid4().hex[:8]}"
    with environment(server.worker_env(endpoint)):
        yield server, endpoint
    server.close()


def governed(
    server: CacheServer, config: ModelConfig, agent_id: str, mode: str, plans: CachePlanStore
) -> ModelProvider:
    context = CacheContext(agent_id, mode, f"conversation-{uuid4().hex}")  # type: ignore[arg-type]
    return get_provider(
        server.provider,
        Settings(),
        lambda surface: ResendWithoutHints(GovernedSurface(surface, context, plans.get, CONFIG)),
    )


def call(provider: ModelProvider, config: ModelConfig, question: str) -> ModelResponse:
    return provider.complete(config, [Message(role="user", content=question)], CancelToken(), [])


def learn(
    server: CacheServer,
    config: ModelConfig,
    questions: list[str],
    apart: timedelta,
    plans: CachePlanStore,
) -> str:
    """An agent whose learned cache plan holds ``questions`` asked through the SDK (observe
    mode), one call every ``apart``; its id."""
    agent_id = f"rules-{uuid4().hex[:8]}"
    provider = governed(server, config, agent_id, "observe", plans)
    calls = []
    for index, question in enumerate(questions):
        response = call(provider, config, question)
        start = T0 + index * apart
        calls.append(
            CallRecord(
                kind="model",
                name=config.model,
                started_at=start,
                ended_at=start + timedelta(seconds=1),
                surface=response.surface,
                prompt=response.prompt,
            )
        )
    run = RunRecord(run_id="r", agent_name="a", agent_id=agent_id, started_at=T0, calls=calls)
    report = ingest_records([run.model_dump(mode="json")], PlanStore(plans.client), plans, CONFIG)
    assert report.changed_cache_plans == [agent_id]
    return agent_id


def anthropic_config(endpoint: str) -> ModelConfig:
    # The caller marks its system prompt itself, with the default (5 minute) lifetime.
    system = [{"type": "text", "text": INSTRUCTIONS, "cache_control": CALLER_5M}]
    return ModelConfig(
        provider="anthropic", model=SONNET, endpoint=endpoint, options={"system": system}
    )


@pytest.mark.parametrize("served", [AnthropicCacheServer], indirect=True)
def test_no_1h_breakpoint_after_the_callers_5m_one(
    served: tuple[CacheServer, str], cache_plans: CachePlanStore
) -> None:
    server, endpoint = served
    config = anthropic_config(endpoint)
    # Calls ten minutes apart: only the 1 h lifetime pays, on the prefix after the caller's
    # 5 min marker, where Anthropic refuses it.
    agent_id = learn(server, config, ["What is 2 + 3?"] * 20, timedelta(minutes=10), cache_plans)
    first = len(server.received)
    response = call(
        governed(server, config, agent_id, "apply", cache_plans), config, "What is 2 + 3?"
    )
    (sent,) = server.received[first:]  # accepted the first time
    assert anthropic_prompt(sent)[1] == {0: "5m"}  # the caller's marker alone: no 1 h after it
    assert response.cache is None
    assert server.usages[-1]["cache_read_input_tokens"] > 0  # the caller's marker still reads


@pytest.mark.parametrize("served", [AnthropicCacheServer], indirect=True)
def test_a_block_the_caller_marked_keeps_the_callers_lifetime(
    served: tuple[CacheServer, str], cache_plans: CachePlanStore
) -> None:
    server, endpoint = served
    config = anthropic_config(endpoint)
    # Every question differs: the shared prefix ends with the system prompt the caller marked,
    # and the 1 h lifetime would pay there.
    questions = [f"What is {i} + 3?" for i in range(20)]
    agent_id = learn(server, config, questions, timedelta(minutes=10), cache_plans)
    call(governed(server, config, agent_id, "apply", cache_plans), config, "What is 7 + 1?")
    assert server.received[-1]["system"][0]["cache_control"] == CALLER_5M


HINTS = ("prompt_cache_key", "prompt_cache_retention")


def strict_chat() -> CacheServer:
    return OpenAIChatCacheServer(refuses=HINTS)


def strict_responses() -> CacheServer:
    return OpenAIResponsesCacheServer(refuses=HINTS)


@pytest.mark.parametrize("served", [strict_chat, strict_responses], indirect=True)
def test_a_request_refused_for_its_hints_is_sent_once_more_without_them(
    served: tuple[CacheServer, str], cache_plans: CachePlanStore
) -> None:
    server, endpoint = served
    config = ModelConfig(provider=server.provider, model="gpt-5", endpoint=endpoint)
    question = INSTRUCTIONS + "What is 2 + 3?"  # long enough for a cache key to pay
    agent_id = learn(server, config, [question] * 5, timedelta(seconds=20), cache_plans)
    provider = governed(server, config, agent_id, "apply", cache_plans)
    first = len(server.received)
    response = call(provider, config, question)
    hinted, plain = server.received[first:]
    assert hinted["prompt_cache_key"] and not set(HINTS) & plain.keys()
    assert {k: v for k, v in hinted.items() if k not in HINTS} == plain
    assert response.cache is not None and response.cache.refused
    assert response.cache.cache_key == hinted["prompt_cache_key"]
    # The endpoint does not take the fields: this process sends it none any more.
    again = call(provider, config, question)
    assert len(server.received) == first + 3 and not set(HINTS) & server.received[-1].keys()
    assert again.cache is None


def test_the_openai_sdk_minimum_takes_every_hint_the_governor_adds() -> None:
    from openai.resources.chat.completions import AsyncCompletions
    from openai.resources.responses import AsyncResponses

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    minimums = [
        tuple(int(part) for part in spec.removeprefix("openai>=").split("."))
        for spec in extras["openai"] + extras["dev"]
        if spec.startswith("openai>=")
    ]
    # prompt_cache_key came in 1.98, prompt_cache_retention in 2.8: an older SDK raises
    # TypeError on them, before any request is sent.
    assert minimums and min(minimums) >= (2, 8)

    for create in (AsyncCompletions.create, AsyncResponses.create):
        assert set(HINTS) <= inspect.signature(create).parameters.keys()


def test_a_request_refused_without_its_hints_too_fails_with_the_providers_error(
    cache_plans: CachePlanStore,
) -> None:
    server = OpenAIChatCacheServer()
    endpoint = f"rules-{uuid4().hex[:8]}"
    with environment(server.worker_env(endpoint)):
        config = ModelConfig(provider="openai", model="gpt-5", endpoint=endpoint)
        question = INSTRUCTIONS + "What is 2 + 3?"
        agent_id = learn(server, config, [question] * 5, timedelta(seconds=20), cache_plans)
        server.refuses = frozenset({"prompt_cache_key", "max_completion_tokens"})
        first = len(server.received)
        with pytest.raises(ProviderError, match="400 - Unrecognized request argument"):
            call(governed(server, config, agent_id, "apply", cache_plans), config, question)
    server.close()
    # Sent once with the hints, once without: the second refusal is the caller's to see.
    assert len(server.received) == first + 2


@pytest.mark.parametrize("served", [OpenAIChatCacheServer], indirect=True)
def test_a_conversation_keeps_its_key_when_its_plan_changes_under_it(
    served: tuple[CacheServer, str], cache_plans: CachePlanStore
) -> None:
    """A learner raising the plan's calls per minute mid-conversation would move the key to a
    shard (``ao-…-N``): the conversation keeps the key of its first keyed call, so its later
    turns meet the prefix it cached."""
    server, endpoint = served
    config = ModelConfig(provider=server.provider, model="gpt-5", endpoint=endpoint)
    question = INSTRUCTIONS + "What is 2 + 3?"
    agent_id = learn(server, config, [question] * 5, timedelta(seconds=20), cache_plans)
    learned = cache_plans.get(agent_id)
    assert learned is not None
    busy = learned.model_copy(
        update={
            "profiles": {
                key: profile.model_copy(update={"calls_per_minute": CONFIG.key_rpm * 40})
                for key, profile in learned.profiles.items()
            }
        }
    )
    seen: list[str] = []

    def plans(agent: str) -> CachePlan | None:
        seen.append(agent)
        return learned if len(seen) == 1 else busy  # the learner's update lands after turn 1

    context = CacheContext(agent_id, "apply", f"conversation-{uuid4().hex}")
    provider = get_provider(
        server.provider, Settings(), lambda s: GovernedSurface(s, context, plans, CONFIG)
    )
    first = len(server.received)
    call(provider, config, question)
    call(provider, config, question)
    turn_1, turn_2 = server.received[first:]
    assert len(seen) == 2, "the second turn read the changed plan"
    assert turn_1["prompt_cache_key"] == turn_2["prompt_cache_key"]
    # The plan read alone would have sharded it: a new conversation takes a shard's key.
    fresh = CacheContext(agent_id, "apply", f"conversation-{uuid4().hex}")
    provider = get_provider(
        server.provider, Settings(), lambda s: GovernedSurface(s, fresh, lambda _: busy, CONFIG)
    )
    call(provider, config, question)
    assert server.received[-1]["prompt_cache_key"].startswith(turn_1["prompt_cache_key"] + "-")
