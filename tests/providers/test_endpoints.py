"""Where a model is served and with which key is the workers' decision: a client names one
of their endpoints, and never a URL or an environment variable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator import AgentSpec, Client, InvalidRunError, Message, ModelConfig
from orchestrator.config.settings import Settings
from tests.helpers import items, local_endpoints, scripted, stored_runs
from tests.servers.fake_api import FakeAPI
from workers.execution.cancellation import CancelToken
from workers.providers import get_provider

ANSWER = {
    "id": "c",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


@pytest.mark.parametrize("option", ["base_url", "api_key_env"])
def test_a_client_supplied_url_or_key_variable_is_refused_at_submit(
    client: Client, option: str
) -> None:
    before = stored_runs(client.redis)
    mapper = {"name": "m", "model": {"provider": "openai", "options": {option: "x"}}}
    with pytest.raises(InvalidRunError, match=f"mapper.model.options: .*{option}"):
        client.map_reduce("t", items(1), mapper, scripted("r"))
    assert not stored_runs(client.redis) - before  # nothing dispatched


def test_an_endpoint_the_workers_do_not_declare_is_refused_at_submit(client: Client) -> None:
    assert client.endpoints() == ["declared"]
    mapper = AgentSpec(name="m", model=ModelConfig(provider="openai", endpoint="elsewhere"))
    with pytest.raises(
        InvalidRunError, match=r"unknown endpoint 'elsewhere' \(declared.*: declared\)"
    ):
        client.map_reduce("t", items(1), mapper, scripted("r"))


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeAPI, FakeAPI]]:
    declared, chosen_by_a_client = FakeAPI(), FakeAPI()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-operators-key")
    monkeypatch.setenv("ANOTHER_SECRET", "sk-another-secret")
    monkeypatch.setenv("ORCHESTRATOR_ENDPOINTS", local_endpoints(declared.port))
    yield declared, chosen_by_a_client
    declared.close()
    chosen_by_a_client.close()


def test_a_worker_sends_its_key_only_where_its_own_configuration_says(
    servers: tuple[FakeAPI, FakeAPI],
) -> None:
    declared, chosen_by_a_client = servers
    declared.reply(ANSWER)
    # A configuration that slipped past validation (built without it) still names a URL and a
    # variable: the worker uses neither.
    config = ModelConfig.model_construct(
        provider="openai",
        model="m",
        endpoint="test-openai",
        context_window=128_000,
        options={
            "base_url": f"http://127.0.0.1:{chosen_by_a_client.port}/v1",
            "api_key_env": "ANOTHER_SECRET",
        },
    )
    messages = [Message(role="user", content="hi")]
    assert (
        get_provider("openai", Settings()).complete(config, messages, CancelToken(), []).text
        == "hi"
    )
    assert chosen_by_a_client.requests == []
    ((_, headers, _),) = declared.requests
    assert headers["authorization"] == "Bearer sk-the-operators-key"
