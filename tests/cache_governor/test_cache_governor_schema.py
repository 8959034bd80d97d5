"""The cache governor and the cache learner see an output schema as what it is: a block of the
stable prefix, after the tools, part of the request's learning key, never given a hint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from learners.prompt_cache import observations_of
from orchestrator.config.governor import CacheGovernorConfig
from orchestrator.config.settings import Settings
from orchestrator.models import CallRecord, Message, ModelConfig, RunRecord
from orchestrator.models.cache_records import PromptBlock, toolset_hash
from orchestrator.plans.cache_plans import CachePlan, CacheProfile, PositionStat, learning_key
from orchestrator.tools import ToolInfo
from tests.providers.test_providers import ANTHROPIC_ANSWER
from tests.servers.fake_api import FakeAPI, serve_api
from tests.servers.structured_wire import anthropic_rule
from workers.agent.structured import asked
from workers.cache.governed import CacheContext, GovernedSurface
from workers.cache.prompt_ir import ANTHROPIC, OPENAI_CHAT, OPENAI_RESPONSES, prompt_blocks
from workers.execution.cancellation import CancelToken
from workers.providers import PROVIDERS
from workers.providers.http_common import BodySurface

CONFIG = CacheGovernorConfig()
SONNET = "claude-sonnet-4-5"
TOOL = ToolInfo(
    name="lookup", description="Look a word up.", parameters={"type": "object", "properties": {}}
)
# Long enough that the prefix through it is worth caching (over 1,024 tokens).
SCHEMA = {
    "type": "object",
    "description": "An invoice, field by field. " * 200,
    "properties": {"total": {"type": "number"}},
    "required": ["total"],
}
SURFACES = {"anthropic": ANTHROPIC, "openai": OPENAI_CHAT, "openai_responses": OPENAI_RESPONSES}


def body(provider: str, question: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    config = asked(ModelConfig(provider=provider, model=SONNET), schema)
    messages = [Message(role="system", content="Be brief."), Message(role="user", content=question)]
    surface = PROVIDERS[provider](Settings())
    assert isinstance(surface, BodySurface)
    return surface.request_body(config, messages, [TOOL])


@pytest.mark.parametrize("provider", sorted(SURFACES))
def test_the_schema_is_a_block_of_the_stable_prefix_after_the_tools(provider: str) -> None:
    surface = SURFACES[provider]
    first = prompt_blocks(surface, body(provider, "What is 2 + 2?", SCHEMA), 4.0)
    second = prompt_blocks(surface, body(provider, "Name a colour.", SCHEMA), 4.0)
    assert [b.kind for b in first[:2]] == ["tool", "output_schema"]
    assert first[1].hash == second[1].hash  # the same on every call of the agent
    assert first[1].tokens > 1000  # counted, as the provider counts it
    bare = prompt_blocks(surface, body(provider, "What is 2 + 2?", None), 4.0)
    assert "output_schema" not in [b.kind for b in bare]
    counted = {**SCHEMA, "properties": {"total": {"type": "integer"}}}
    other = prompt_blocks(surface, body(provider, "2 + 2?", counted), 4.0)
    keys = {toolset_hash(first), toolset_hash(bare), toolset_hash(other)}
    assert len(keys) == 3, "a schema is part of the request's learning key"


def test_the_learner_keeps_requests_with_a_schema_apart() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def call(kinds: list[str], at: int) -> CallRecord:
        blocks = [PromptBlock(kind=kind, hash=f"{kind}-h", tokens=500) for kind in kinds]
        return CallRecord(
            kind="model",
            name=SONNET,
            started_at=start + timedelta(seconds=at),
            ended_at=start + timedelta(seconds=at + 1),
            surface=ANTHROPIC,
            prompt=blocks,
        )

    calls = [call(["tool", "output_schema", "user"], 0), call(["tool", "user"], 10)]
    record = RunRecord(run_id="r", agent_name="a", agent_id="a", started_at=start, calls=calls)
    keys = [keyed[0] for keyed, _ in observations_of(record, CONFIG)]
    assert len(set(keys)) == 2


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAPI]:
    yield from serve_api(monkeypatch)


def test_no_cache_hint_goes_on_the_output_schema(api: FakeAPI) -> None:
    """A profile whose most profitable boundary is the schema (it is the last stable block):
    the planner may not mark it (Anthropic takes no ``cache_control`` there)."""
    api.rule = anthropic_rule
    api.reply(ANTHROPIC_ANSWER)
    config = asked(
        ModelConfig(provider="anthropic", model=SONNET, endpoint="test-anthropic"), SCHEMA
    )
    messages = [Message(role="system", content="Be brief."), Message(role="user", content="2+2?")]
    surface = PROVIDERS["anthropic"](Settings())  # the endpoints serve_api declared
    assert isinstance(surface, BodySurface)
    blocks = prompt_blocks(ANTHROPIC, surface.request_body(config, messages, [TOOL]), 4.0)
    assert [b.kind for b in blocks] == ["tool", "output_schema", "system", "user"]
    shares = [1.0, 1.0, 0.1, 0.1]
    profile = CacheProfile(
        surface=ANTHROPIC,
        model=SONNET,
        toolset=toolset_hash(blocks),
        observations=20,
        total_observations=20,
        positions=[
            PositionStat(hash=block.hash, presence=1.0, share=share)
            for block, share in zip(blocks, shares, strict=True)
        ],
        reuse_within={"5m": 1.0, "1h": 1.0},
        continued_within={"5m": 0.0, "1h": 0.0},
    )
    key = learning_key(ANTHROPIC, SONNET, profile.toolset)
    plan = CachePlan(agent_id="a", profiles={key: profile})
    context = CacheContext("a", "apply", "conversation")
    governed = GovernedSurface(surface, context, lambda _: plan, CONFIG)
    response = governed.complete(config, messages, CancelToken(), [TOOL])
    sent = api.requests[0][2]
    assert "cache_control" not in json.dumps(sent["output_config"])
    assert response.cache is None  # the tool alone is too short to cache: no hint pays
