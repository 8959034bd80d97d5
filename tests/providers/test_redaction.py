"""Provider error text is redacted of secrets before it is stored anywhere."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from orchestrator.config.settings import Settings
from orchestrator.models import Message, ModelConfig
from tests.servers.wire_server import WireServer, read_body, send_json
from workers.execution.cancellation import CancelToken
from workers.providers import ProviderError, get_provider
from workers.providers.redaction import MAX_CHARS, REDACTED, redact

# Not shaped like any known key, so only the exact match of the key used can catch it.
SECRET = "e2e-recognisable-secret-0123456789abcdef"


def test_a_key_echoed_in_a_json_error_body_is_redacted() -> None:
    body = json.dumps({"error": {"message": "invalid key", "api_key": "abc123-short"}})
    text = redact(f"Error code: 401 - {body}")
    assert "abc123-short" not in text
    assert '"api_key": "[redacted]"' in text and "invalid key" in text


def test_a_given_secret_is_redacted_whatever_its_shape() -> None:
    text = redact("key mysecretvalue is not valid", ["mysecretvalue", ""])
    assert text == f"key {REDACTED} is not valid"


def test_a_bearer_header_is_redacted() -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.payload.signature"
    for text in (
        f"Authorization: Bearer {token}",
        f"{{'headers': {{'authorization': 'Bearer {token}'}}}}",
        f"sent Bearer {token} upstream",
    ):
        redacted = redact(text)
        assert token not in redacted and f"Bearer {REDACTED}" in redacted
        assert redact(redacted) == redacted


def test_an_anthropic_x_api_key_is_redacted() -> None:
    text = redact('{"x-api-key": "my-anthropic-credential"} and x-api-key: other-credential')
    assert "credential" not in text
    assert text == f'{{"x-api-key": "{REDACTED}"}} and x-api-key: {REDACTED}'


def test_plain_sk_keys_are_redacted() -> None:
    for key in (
        "sk-abcdefghijklmnopqrstuvwx",
        "sk-proj-AbC123_xyz-0987654321",
        "sk-ant-api03-" + "A" * 40,
    ):
        assert redact(f"Incorrect API key provided: {key}.") == (
            f"Incorrect API key provided: {REDACTED}."
        )


def test_long_tokens_after_key_like_names_are_redacted() -> None:
    text = redact(
        "access_token=0123456789abcdef0123456789abcdef&client_secret: QUJDREVGR0hJSktMTU5PUFFS"
    )
    assert text == f"access_token={REDACTED}&client_secret: {REDACTED}"


def test_text_without_secrets_is_unchanged() -> None:
    for text in (
        "openai: BadRequestError: Error code: 400 - {'error': {'message': 'bad tool schema'}}",
        '{"usage": {"prompt_tokens": 12, "max_tokens": 4096}, "token": "invalid"}',
        "openai: set OPENAI_API_KEY in the worker's environment (api_key_env)",
        "Bearer token required; task-1234 sk-short",
    ):
        assert redact(text) == text


def test_long_text_is_cut_after_redaction() -> None:
    key = "sk-" + "k" * 40
    text = redact("x" * (MAX_CHARS - 10) + key + "y" * 100_000)
    assert len(text) < MAX_CHARS + 100 and "kkkkkkkkk" not in text
    assert text.endswith(f"[cut from {MAX_CHARS - 10 + len(key) + 100_000} characters]")


class EchoingAPI(WireServer):
    """A local server speaking the Chat Completions wire format that answers every request
    with a 401 whose body echoes the request's Authorization header, as some proxies do."""

    def handle_post(self, request: BaseHTTPRequestHandler) -> None:
        read_body(request)
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ")
        error = {
            "message": f"Incorrect API key provided: {token} (Authorization: {auth})",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
            "request": {"headers": {"Authorization": auth}},
        }
        send_json(request, 401, {"error": error})


@pytest.fixture
def echoing_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[EchoingAPI]:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server = EchoingAPI()
    yield server
    server.close()


def served_by(api: EchoingAPI, monkeypatch: pytest.MonkeyPatch) -> ModelConfig:
    """An OpenAI model served by ``api``: through a worker's declared endpoint where workers
    own their endpoints, else through the ``base_url`` option."""
    base_url = f"http://127.0.0.1:{api.port}/v1"
    if "endpoint" not in ModelConfig.model_fields:
        return ModelConfig(provider="openai", model="m", options={"base_url": base_url})
    endpoints = {"echo": {"provider": "openai", "base_url": base_url}}
    monkeypatch.setenv("ORCHESTRATOR_ENDPOINTS", json.dumps(endpoints))
    return ModelConfig.model_validate({"provider": "openai", "model": "m", "endpoint": "echo"})


def test_a_401_echoing_the_authorization_header_leaves_no_key_in_the_error(
    echoing_api: EchoingAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = served_by(echoing_api, monkeypatch)
    with pytest.raises(ProviderError) as raised:
        get_provider("openai", Settings()).complete(
            config, [Message(role="user", content="hi")], CancelToken(), []
        )
    text = str(raised.value)
    assert "AuthenticationError" in text and "Incorrect API key provided" in text
    assert SECRET not in text and REDACTED in text
