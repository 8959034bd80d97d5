"""Secrets stay secret: API keys live in the workers' environment and appear nowhere else.

Real workers hold distinctive fake keys and call a local server speaking the OpenAI and
Anthropic wire formats. One run succeeds; the others meet upstream errors that echo the
request's credentials: a 401 whose JSON repeats ``Bearer <key>``, the raw key and every request
header, a 400 whose body is the raw request (so the SDK's own error message repeats it), and a
500 retried until it fails. Then everything the system wrote or printed is searched for the
keys, and for the distinctive middle of each (should something keep a key cut short): every
Redis key name and value of every type in every database (broker queues and their message
bodies decoded from base64, unacknowledged messages, result-backend ``celery-task-meta-*``
keys, run state, event streams), the results, records, events and statuses the client gets,
the CLI's output, and the worker logs.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import string
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator import AgentSpec, Client, ModelConfig, RunFailedError
from orchestrator.local import LocalRedis, LocalWorker, wait_for_workers
from tests.conftest import FAST_TIMINGS
from tests.helpers import local_endpoints, run_cli, wait_for
from tests.servers.model_server import completion
from tests.servers.wire_server import WireServer, read_body, send, send_json
from workers.providers.redaction import REDACTED


def _random(length: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


OPENAI_KEY = f"sk-test-{_random(40)}"
ANTHROPIC_KEY = f"sk-ant-test-{_random(40)}"
# Shaped like no known key: only the exact redaction of the key used for the call catches it.
ENDPOINT_KEY = f"vllm-{_random(40)}"
KEYS = (OPENAI_KEY, ANTHROPIC_KEY, ENDPOINT_KEY)
NEEDLES = (*KEYS, *(key[-30:-10] for key in KEYS))


class EchoingProvider(WireServer):
    """Answers ``/v1/chat/completions``, ``/v1/responses`` and ``/v1/messages`` by model name:
    ``ok`` answers; ``echo-json`` is a 401 whose JSON body repeats the credential (raw and as
    ``Bearer``) and every request header; ``echo-dump`` is a 400 whose text body is the raw
    request, headers included; ``echo-500`` is a 500 whose JSON holds that dump (retried)."""

    def handle_post(self, request: BaseHTTPRequestHandler) -> None:
        raw = read_body(request)
        body = json.loads(raw or b"{}")
        key = request.headers.get("x-api-key") or request.headers.get(
            "authorization", ""
        ).removeprefix("Bearer ")
        dump = f"{request.requestline}\r\n{request.headers}{raw.decode()}"
        model = body.get("model", "")
        if model == "ok":
            send_json(request, 200, answer(request.path, model))
        elif model == "echo-json":
            error = {
                "message": f"Incorrect API key provided: {key}. Sent: Bearer {key}",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
                "request_headers": dict(request.headers.items()),
            }
            send_json(request, 401, {"type": "error", "error": error})
        elif model == "echo-dump":
            send(request, 400, dump.encode(), content_type="text/plain")
        else:
            send_json(request, 500, {"error": {"message": dump}}, headers={"retry-after": "0"})


def answer(path: str, model: str) -> dict[str, Any]:
    """A successful answer in the wire format of ``path``."""
    if path.endswith("/messages"):
        return {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": "all good"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 3},
        }
    if path.endswith("/responses"):
        return {
            "id": "resp_1",
            "object": "response",
            "created_at": 0,
            "status": "completed",
            "model": model,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "output": [
                {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "all good", "annotations": []}],
                }
            ],
            "usage": {
                "input_tokens": 10,
                "output_tokens": 3,
                "total_tokens": 13,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
        }
    return completion(model, "all good")


def agent(name: str, provider: str, model: str, endpoint: str | None = None) -> AgentSpec:
    """An agent on ``provider`` served by the echoing server (through ``endpoint``, else the
    provider's test endpoint)."""
    config = ModelConfig(provider=provider, model=model, endpoint=endpoint or f"test-{provider}")
    return AgentSpec(name=name, model=config)


# --- what the scan reads -------------------------------------------------------------------

_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


def expanded(text: str, depth: int = 0) -> Iterator[str]:
    """``text``, and every string inside it once decoded: JSON (kombu messages, task results,
    stored outputs that hold JSON in JSON) and base64 (kombu message bodies)."""
    yield text
    if depth > 6:
        return
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"'):
        try:
            value = json.loads(stripped)
        except ValueError:
            value = None
        for inner in _strings(value):
            yield from expanded(inner, depth + 1)
    if len(stripped) >= 8 and len(stripped) % 4 == 0 and _BASE64.match(stripped):
        try:
            decoded = base64.b64decode(stripped, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return
        yield from (f"[base64] {inner}" for inner in expanded(decoded, depth + 1))


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield str(key)
            yield from _strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _strings(inner)


def _text(value: bytes | str | float) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def redis_contents(url: str) -> list[tuple[str, str]]:
    """(where, text) for every key name and every value in every database of the server:
    strings, hashes (fields and values), lists, sets, sorted sets (members and scores) and
    streams (entry ids, fields and values), each value expanded (``expanded``)."""
    admin = redis.Redis.from_url(url)
    databases = [int(name[2:]) for name in admin.info("keyspace")]
    assert databases, "the scan found no database with keys"
    found: list[tuple[str, str]] = []
    for db in databases:
        client = redis.Redis.from_url(url, db=db)
        for key in client.scan_iter(count=1000):
            name = f"db{db}:{_text(key)}"
            kind = _text(client.type(key))
            found.append((f"{name} (key name)", _text(key)))
            values: list[bytes | str | float] = []
            if kind == "string":
                values = [client.get(key) or b""]
            elif kind == "hash":
                values = [part for pair in client.hgetall(key).items() for part in pair]
            elif kind == "list":
                values = list(client.lrange(key, 0, -1))
            elif kind == "set":
                values = list(client.smembers(key))
            elif kind == "zset":
                pairs = client.zrange(key, 0, -1, withscores=True)
                values = [part for pair in pairs for part in pair]
            elif kind == "stream":
                for entry_id, fields in client.xrange(key):
                    values.append(entry_id)
                    values.extend(part for pair in fields.items() for part in pair)
            else:
                pytest.fail(f"{name} has type {kind}, which the scan does not read")
            found.extend((f"{name} ({kind})", text) for v in values for text in expanded(_text(v)))
    return found


def leaks(places: list[tuple[str, str]]) -> list[str]:
    """Where any key, or the middle of one, appears."""
    return [
        f"{where}: {needle[:12]}... in {text[:300]!r}"
        for where, text in places
        for needle in NEEDLES
        if needle in where or needle in text
    ]


# --- the runs ------------------------------------------------------------------------------


@dataclass
class Scanned:
    """Everything the scan reads: what the client and the CLI got, Redis, the worker logs."""

    client_side: list[tuple[str, str]]
    redis: list[tuple[str, str]]
    logs: str


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scanned]:
    log_dir = tmp_path_factory.mktemp("secret-scan-logs")
    provider = EchoingProvider()
    server = LocalRedis()
    endpoints = json.loads(local_endpoints(provider.port))
    endpoints["local-vllm"] = {
        "provider": "openai",
        "base_url": f"http://127.0.0.1:{provider.port}/v1",
        "api_key_env": "LOCAL_VLLM_KEY",
    }
    env = {
        **FAST_TIMINGS,
        "ORCHESTRATOR_REDIS_URL": server.url,
        "ORCHESTRATOR_ENDPOINTS": json.dumps(endpoints),
        "ORCHESTRATOR_PROVIDER_RETRIES": "1",
        "OPENAI_API_KEY": OPENAI_KEY,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "LOCAL_VLLM_KEY": ENDPOINT_KEY,
    }
    # No learner: the run records the runs ship stay in the broker's ``learner`` queue, where
    # the scan reads their message bodies.
    workers = [
        LocalWorker(
            name,
            env,
            queues=["coordinator", "agents", "tools"],
            concurrency=8,
            log_path=log_dir / f"{name}.log",
        )
        for name in ("scan1", "scan2")
    ]
    try:
        wait_for_workers(redis.Redis.from_url(server.url), [w.hostname for w in workers])
        yield run_everything(server.url, workers, log_dir)
    finally:
        for worker in workers:
            worker.stop()
        server.stop()
        provider.close()


def run_everything(url: str, workers: list[LocalWorker], log_dir: Path) -> Scanned:
    client = Client(redis_url=url)
    client_side: list[tuple[str, str]] = []

    succeeded = client.map_reduce(
        "Say hello",
        ["one", "two"],
        agent("mapper", "openai", "ok"),
        agent("reducer", "anthropic", "ok"),
    )
    client_side.append(("success result", succeeded.result(timeout=60).model_dump_json()))

    configs = [
        agent("chat-json", "openai", "echo-json"),
        agent("responses-dump", "openai_responses", "echo-dump"),
        agent("anthropic-json", "anthropic", "echo-json"),
        agent("endpoint-500", "openai", "echo-500", endpoint="local-vllm"),
        agent("endpoint-json", "openai", "echo-json", endpoint="local-vllm"),
        agent("fine", "openai", "ok"),
    ]
    branches = client.parallel_branches(configs, prompt="Which?", strategy="pick_first")
    client_side.append(("branches result", branches.result(timeout=60).model_dump_json()))

    mapped = client.map_reduce(
        "Fail loudly",
        ["one", "two"],
        agent("mapper", "anthropic", "echo-dump"),
        agent("reducer", "openai", "echo-json"),
    )
    # Only a single run keeps its record with the run: its error echoes the key, so that the
    # scan of records kept in Redis reads one that would hold it.
    single = client.run_agent(agent("single", "openai", "echo-json", "local-vllm"), "Go")
    failed = [mapped, single]
    for handle in failed:
        with pytest.raises(RunFailedError) as raised:
            handle.result(timeout=60)
        client_side.append(("failed run error", str(raised.value)))
        assert raised.value.result is not None
        client_side.append(("failed run result", raised.value.result.model_dump_json()))

    handles = [succeeded, branches, *failed]
    for handle in handles:
        client_side.append(("status", handle.status().model_dump_json()))
        client_side += [("event", event.model_dump_json()) for event in handle.events()]
        for args in (("status", handle.id, "--output", "json"), ("events", handle.id)):
            done = run_cli(*args, env={"ORCHESTRATOR_REDIS_URL": url})
            assert done.returncode == 0, done.stderr
            client_side.append((f"orchestrator {args[0]}", done.stdout + done.stderr))

    # Each run ships its records to the learners once it has ended.
    state = redis.Redis.from_url(url)
    wait_for(lambda: state.llen("learner") >= len(handles), "the learner got every record")
    for worker in workers:
        worker.stop()  # its logs are complete, and nothing changes while Redis is read
    logs = "".join(path.read_text() for path in sorted(log_dir.glob("*.log")))
    return Scanned(client_side, redis_contents(url), logs)


# --- the checks ----------------------------------------------------------------------------


def test_the_runs_met_the_echoing_errors_and_the_scan_reads_where_they_went(
    scanned: Scanned,
) -> None:
    """The positive side: the credential-echoing errors reached every place that is scanned
    (redacted), so a key that got past redaction would be found there."""
    redacted_in = {where for where, text in scanned.client_side if REDACTED in text}
    assert {"branches result", "failed run error", "failed run result", "event"} <= redacted_in
    assert {"orchestrator status", "orchestrator events"} <= redacted_in
    places = scanned.redis

    def redacted(where: str, *, base64: bool = False) -> bool:
        return any(
            where in place and REDACTED in text and (text.startswith("[base64]") or not base64)
            for place, text in places
        )

    assert redacted(":outputs (hash)") and redacted(":events (stream)")
    # Agent tasks store no task result (``celery-task-meta-*``): their outputs are kept with
    # the run alone.
    assert redacted(":records (hash)")
    # Run records in the learner queue's message bodies, decoded from base64.
    assert redacted("db0:learner (list)", base64=True)
    assert any("(key name)" in where for where, _ in places)
    assert "AuthenticationError" in scanned.logs and REDACTED in scanned.logs


def test_no_key_is_in_any_redis_key_name_or_value(scanned: Scanned) -> None:
    assert leaks(scanned.redis) == []


def test_no_key_is_in_what_the_client_or_the_cli_gets(scanned: Scanned) -> None:
    assert leaks(scanned.client_side) == []


def test_no_key_is_in_the_worker_logs(scanned: Scanned) -> None:
    assert leaks([("worker logs", scanned.logs)]) == []
