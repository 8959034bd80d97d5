"""The cache governor end to end: agent workers, the cache learner and plans in Redis, and
local servers speaking each provider's wire format over a simulated prompt cache."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import pytest
import redis

from orchestrator import AgentSpec, Client, ModelConfig
from orchestrator.local import LocalRedis, LocalWorker, wait_for_workers
from orchestrator.models import AgentOutput
from orchestrator.plans.cache_plans import CachePlan
from orchestrator.state.events import ModelTurn
from tests.conftest import FAST_TIMINGS
from tests.helpers import run_cli, wait_for
from tests.servers.cache_servers import (
    AnthropicCacheServer,
    CacheServer,
    OpenAIChatCacheServer,
    OpenAIResponsesCacheServer,
    combined_env,
)

# About 1,500 tokens by any count: above every model's minimum cacheable length here.
INSTRUCTIONS = "You add numbers with the add tool, then answer. " * 125
CALLS_PER_RUN = 3  # two tool turns, then the answer


@dataclass
class Setup:
    client: Client
    env: dict[str, str]
    servers: dict[str, CacheServer]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    servers: dict[str, CacheServer] = {
        "anthropic": AnthropicCacheServer(
            tool_turns=2, tool_name="add", tool_input={"a": 2, "b": 3}
        ),
        "openai": OpenAIChatCacheServer(tool_turns=2, tool_name="add", tool_input={"a": 2, "b": 3}),
        "openai_responses": OpenAIResponsesCacheServer(
            tool_turns=2, tool_name="add", tool_input={"a": 2, "b": 3}
        ),
    }
    server = LocalRedis()
    env = {
        "ORCHESTRATOR_REDIS_URL": server.url,
        **FAST_TIMINGS,
        **combined_env(*(s.worker_env(f"sim-{name}") for name, s in servers.items())),
    }
    logs = tmp_path_factory.mktemp("cache-governor")
    worker = LocalWorker("cachegov", env, concurrency=4, log_path=logs / "worker.log")
    try:
        wait_for_workers(redis.Redis.from_url(server.url), [worker.hostname])
        yield Setup(Client(redis_url=server.url), env, servers)
    finally:
        worker.stop()
        server.stop()
        for each in servers.values():
            each.close()


def agent(provider: str, agent_id: str, mode: str, instructions: str = INSTRUCTIONS) -> AgentSpec:
    model = "claude-sonnet-4-5" if provider == "anthropic" else "gpt-5"
    return AgentSpec(
        name="adder",
        agent_id=agent_id,
        instructions=instructions,
        model=ModelConfig(provider=provider, model=model, endpoint=f"sim-{provider}"),
        tools=["add"],
        cache_mode=mode,  # type: ignore[arg-type]
    )


def run(setup: Setup, spec: AgentSpec, prompt: str) -> tuple[AgentOutput, list[ModelTurn]]:
    handle = setup.client.run_agent(spec, prompt)
    result = handle.result(60)
    turns = [e for e in handle.events(follow=False) if isinstance(e, ModelTurn)]
    assert result.output.succeeded(), result.output.error
    return result.output, turns


def learned(setup: Setup, agent_id: str, observations: int) -> CachePlan:
    """The agent's cache plan once its one profile holds ``observations`` calls."""

    def plan() -> CachePlan | None:
        found = setup.client.cache_plan(agent_id)
        seen = sum(p.total_observations for p in found.profiles.values()) if found else 0
        return found if seen >= observations else None

    return wait_for(plan, f"{agent_id} learned {observations} calls", 30)


def observe(setup: Setup, provider: str, agent_id: str, runs: int, **spec: Any) -> None:
    for index in range(runs):
        run(setup, agent(provider, agent_id, "observe", **spec), f"What is {index} + 3?")
    learned(setup, agent_id, runs * CALLS_PER_RUN)


def new_requests(server: CacheServer, since: int) -> list[dict[str, Any]]:
    return server.received[since:]


def has_hint(value: Any) -> bool:
    if isinstance(value, dict):
        return "cache_control" in value or any(has_hint(v) for v in value.values())
    if isinstance(value, list):
        return any(has_hint(item) for item in value)
    return False


def test_apply_mode_reads_the_cache_and_costs_less_than_observe(setup: Setup) -> None:
    server = setup.servers["anthropic"]
    agent_id = f"adder-{uuid4().hex[:8]}"
    observe(setup, "anthropic", agent_id, runs=3)
    assert not any(has_hint(body) for body in server.received)  # observe changes nothing

    start = len(server.received)
    watched, _ = run(setup, agent("anthropic", agent_id, "observe"), "What is 2 + 3?")
    applied, turns = run(setup, agent("anthropic", agent_id, "apply"), "What is 2 + 3?")
    sent = new_requests(server, start)
    assert len(sent) == 2 * CALLS_PER_RUN
    assert not any(has_hint(body) for body in sent[:CALLS_PER_RUN])
    # The applied calls carried breakpoints, and the learned plan covers the instructions.
    applied_bodies = sent[CALLS_PER_RUN:]
    assert all(has_hint(body["system"]) for body in applied_bodies)
    decisions = [turn.cache for turn in turns]
    assert all(d is not None and d.breakpoints and d.ttl == "5m" for d in decisions)
    # Its later calls read what its first one wrote, and the run cost less than in observe.
    reads = [usage["cache_read_input_tokens"] for usage in server.usages[-CALLS_PER_RUN:]]
    assert reads[0] == 0 and all(read > 0 for read in reads[1:])
    assert applied.tokens.cache_read_input_tokens == sum(reads)
    assert watched.tokens.cache_read_input_tokens == 0
    assert 0 < applied.tokens.cost_usd < watched.tokens.cost_usd


def test_no_hints_where_they_cannot_pay(setup: Setup) -> None:
    server = setup.servers["anthropic"]
    agent_id = f"short-{uuid4().hex[:8]}"
    # Instructions far below the model's minimum cacheable length: nothing worth a breakpoint.
    observe(setup, "anthropic", agent_id, runs=3, instructions="Add.")
    start = len(server.received)
    _, turns = run(setup, agent("anthropic", agent_id, "apply", "Add."), "What is 2 + 3?")
    assert len(new_requests(server, start)) == CALLS_PER_RUN
    assert not any(has_hint(body) for body in new_requests(server, start))
    assert all(turn.cache is None for turn in turns)


@pytest.mark.parametrize("provider", ["openai", "openai_responses"])
def test_openai_calls_get_a_stable_cache_key(setup: Setup, provider: str) -> None:
    server = setup.servers[provider]
    agent_id = f"adder-{uuid4().hex[:8]}"
    observe(setup, provider, agent_id, runs=3)
    assert not any("prompt_cache_key" in body for body in server.received)

    # A worker checks its copy of a plan at most every half second: on a busy machine the
    # first apply run may start while that copy still says "no plan". Wait for a run that
    # applied it throughout, then look at two more.
    def applied() -> bool:
        _, warm = run(setup, agent(provider, agent_id, "apply"), "What is 1 + 3?")
        return all(turn.cache is not None and turn.cache.cache_key for turn in warm)

    wait_for(applied, "a run with every call under the learned plan's key")
    start = len(server.received)
    _, turns = run(setup, agent(provider, agent_id, "apply"), "What is 2 + 3?")
    _, more = run(setup, agent(provider, agent_id, "apply"), "What is 4 + 3?")
    sent = new_requests(server, start)
    runs = [sent[:CALLS_PER_RUN], sent[CALLS_PER_RUN:]]
    keys = [{body.get("prompt_cache_key") for body in bodies} for bodies in runs]
    # A conversation keeps one key; keys of one learning key share their stem (calls this
    # fast are spread over several keys, each a stem and a shard).
    assert all(len(run_keys) == 1 and None not in run_keys for run_keys in keys)
    stems = {str(key).rsplit("-", 1)[0] if key.count("-") > 1 else key for key in keys[0] | keys[1]}
    assert len(stems) == 1
    for run_turns, run_keys in ((turns, keys[0]), (more, keys[1])):
        assert all(
            turn.cache is not None and turn.cache.cache_key in run_keys for turn in run_turns
        )
    # The server's cache routed by the key: each run's later calls read their shared start.
    later = [*range(-2 * CALLS_PER_RUN + 1, -CALLS_PER_RUN), *range(-CALLS_PER_RUN + 1, 0)]
    assert all(usage_cached(server, i) > 0 for i in later)


def usage_cached(server: CacheServer, index: int) -> int:
    usage = server.usages[index]
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    return int(details.get("cached_tokens", 0))


def test_cache_show_and_reset(setup: Setup) -> None:
    agent_id = f"shown-{uuid4().hex[:8]}"
    observe(setup, "anthropic", agent_id, runs=1)
    shown = run_cli("cache", "show", agent_id, env=setup.env)
    assert shown.returncode == 0, shown.stderr
    assert "anthropic.messages" in shown.stdout and "claude-sonnet-4-5" in shown.stdout
    assert "observations: 3 in the window, 3 in all" in shown.stdout
    assert "stable blocks: 3" in shown.stdout  # the tool, the instructions, the question
    reset = run_cli("cache", "reset", agent_id, env=setup.env)
    assert f"reset the cache plan of {agent_id}" in reset.stdout
    assert setup.client.cache_plan(agent_id) is None
    gone = run_cli("cache", "show", agent_id, env=setup.env)
    assert gone.returncode == 1 and "has no cache plan yet" in gone.stderr
