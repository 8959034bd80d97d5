"""OpenTelemetry traces in one process, through an in-memory exporter: the agent loop's model and
tool calls as GenAI spans, the client's submit as the root of the run's trace (kept with the run
and carried by the admission message), and tracing off unless the OTEL_* variables say so.

The cross-process trace of runs on real workers is in ``test_tracing_workers.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
import redis

from orchestrator import AgentSpec, Client, ModelConfig, Usage, tracing
from orchestrator.config.otlp import otlp_problem
from orchestrator.config.settings import Settings
from orchestrator.local import LocalRedis
from orchestrator.state.keys import RunKeys
from tests.helpers import scripted
from tests.tracing.trace_support import TEST_SERVICE, SpanRecord, finished, memory_exporter
from workers.agent.loop import run_agent
from workers.providers import get_provider
from workers.providers.traced import TracedProvider
from workers.spans import usage_attributes
from workers.tools.registry import ToolRegistry
from workers.tools.runner import ToolRunner

PROMPT = "What is 2 + 3? (prompt-text-3f9a)"
ANSWER = "five (answer-text-8c1d)"


def calls(*pairs: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments} for name, arguments in pairs]}


def tool_agent(script: list[dict[str, Any]], tools: list[str], **options: Any) -> AgentSpec:
    model = ModelConfig(provider="scripted", options={"script": script, **options})
    return AgentSpec(name="adder", model=model, tools=tools)


def traced_run(spec: AgentSpec, prompt: str) -> tuple[Any, SpanRecord, list[SpanRecord]]:
    """Run ``spec`` in this process under a parent span, with the worker's traced provider
    and the test tools; the run, the parent and every span finished."""
    exporter = memory_exporter()
    exporter.clear()
    tools = ToolRunner(ToolRegistry.from_modules(["tests.registered.tools_demo"]))
    with tracing.tracer().start_as_current_span("member"):
        run = run_agent(
            spec,
            prompt,
            run_id="r1",
            tools=tools,
            provider_for=lambda name: get_provider(name, Settings(), TracedProvider),
        )
    spans = finished(exporter)
    (parent,) = [span for span in spans if span.name == "member"]
    return run, parent, [span for span in spans if span is not parent]


def all_values(spans: list[SpanRecord]) -> str:
    """Every attribute value of every span and event, as one text to search."""
    values = [v for s in spans for v in s.attributes.values()]
    values += [v for s in spans for _, attributes in s.events for v in attributes.values()]
    return " ".join(map(str, values))


def test_model_and_tool_calls_are_genai_spans_of_the_agent() -> None:
    script = [calls(("add", {"a": 2, "b": 3})), {"text": ANSWER}]
    run, parent, spans = traced_run(tool_agent(script, ["add"]), PROMPT)
    assert run.output.answer == ANSWER
    assert [s.name for s in sorted(spans, key=lambda s: s.start_ns)] == [
        "chat scripted-1",
        "execute_tool add",
        "chat scripted-1",
    ]
    assert all(s.parent_id == parent.span_id and s.service == TEST_SERVICE for s in spans)
    chats = [s for s in spans if s.name.startswith("chat")]
    for chat in chats:
        assert chat.kind == "CLIENT" and not chat.error
        assert chat.attributes["gen_ai.operation.name"] == "chat"
        assert chat.attributes["gen_ai.provider.name"] == "scripted"
        assert chat.attributes["gen_ai.request.model"] == "scripted-1"
        assert chat.attributes["gen_ai.request.max_tokens"] == 4096
        assert chat.attributes["gen_ai.usage.cache_read.input_tokens"] == 0
        assert chat.attributes["gen_ai.usage.cache_creation.input_tokens"] == 0
    # The two calls' spans add up to what the agent reports.
    tokens = run.output.tokens
    assert sum(c.attributes["gen_ai.usage.input_tokens"] for c in chats) == tokens.input_tokens
    assert sum(c.attributes["gen_ai.usage.output_tokens"] for c in chats) == tokens.output_tokens
    (tool,) = [s for s in spans if s.name == "execute_tool add"]
    assert tool.kind == "INTERNAL" and not tool.error
    assert tool.attributes == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
        "gen_ai.tool.call.id": "call_0_0",
        "gen_ai.tool.type": "function",
    }
    # Neither the prompt nor the answer is in any span.
    assert "prompt-text" not in all_values(spans) and "answer-text" not in all_values(spans)


def test_failures_are_marked_with_a_type_never_their_text() -> None:
    script = [calls(("boom", {"message": "tool-secret-51e2"})), {"text": "done"}]
    _, _, spans = traced_run(tool_agent(script, ["boom"]), PROMPT)
    (tool,) = [s for s in spans if s.name == "execute_tool boom"]
    assert tool.error and tool.attributes["error.type"] == "error"
    assert not tool.events, "no exception event: its message would quote the tool's text"

    _, _, spans = traced_run(tool_agent([], [], fail_on="prompt-text"), PROMPT)
    (chat,) = spans
    assert chat.error and chat.attributes["error.type"] == "ProviderError"
    assert not chat.events
    assert "secret" not in all_values(spans) and "prompt-text" not in all_values(spans)


def test_input_tokens_include_cache_tokens_as_the_conventions_count_them() -> None:
    # Anthropic reports cache reads and writes beside its input tokens...
    anthropic = Usage(input_tokens=100, cache_read_input_tokens=400, cache_creation_input_tokens=50)
    attributes = usage_attributes(anthropic)
    assert attributes["gen_ai.usage.input_tokens"] == 550
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 400
    assert attributes["gen_ai.usage.cache_creation.input_tokens"] == 50
    # ... OpenAI its cached tokens inside them.
    attributes = usage_attributes(Usage(input_tokens=500, cached_tokens=300, output_tokens=9))
    assert attributes["gen_ai.usage.input_tokens"] == 500
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 300
    assert attributes["gen_ai.usage.output_tokens"] == 9


def test_submit_starts_the_runs_trace_keeps_it_and_sends_it_with_the_admission(
    private_redis: LocalRedis,
) -> None:
    # No worker serves this Redis: the admission message stays in its queue to be read.
    exporter = memory_exporter()
    exporter.clear()
    client = Client(redis_url=private_redis.url)
    handle = client.map_reduce("Task", ["a", "b"], scripted("mapper"), scripted("reducer"))
    (root,) = finished(exporter)
    assert root.name == "invoke_workflow map_reduce" and root.kind == "PRODUCER"
    assert root.parent_id == "" and root.service == TEST_SERVICE
    assert root.attributes == {
        "gen_ai.operation.name": "invoke_workflow",
        "gen_ai.workflow.name": "map_reduce",
        "orchestrator.run.id": handle.id,
        "orchestrator.run.kind": "map_reduce",
        "orchestrator.run.members": 2,
    }
    state = redis.Redis.from_url(private_redis.url)
    stored = state.hget(RunKeys(handle.id).run, "traceparent")
    assert stored is not None and ids(stored.decode()) == (root.trace_id, root.span_id)
    (message,) = state.lrange("coordinator", 0, -1)
    headers = json.loads(message)["headers"]
    assert headers["task"] == "tasks.coordinator.admit_run"
    assert ids(headers["traceparent"]) == (root.trace_id, root.span_id)


def ids(traceparent: str) -> tuple[str, str]:
    """The trace id and parent span id of a W3C ``traceparent``."""
    version, trace_id, span_id, _flags = traceparent.split("-")
    assert version == "00"
    return trace_id, span_id


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh process whose only OTEL_* variables are ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=60,
    )


SETUP = """
from opentelemetry import trace
from orchestrator import tracing
on = tracing.configure()
resource = getattr(trace.get_tracer_provider(), "resource", None)
print(on, tracing.enabled(), resource.attributes["service.name"] if resource else None)
"""


def test_tracing_is_off_unless_the_otel_variables_turn_it_on() -> None:
    assert _python(SETUP).stdout.split() == ["False", "False", "None"]
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    assert _python(SETUP, **endpoint).stdout.split() == ["True", "True", "agent-orchestrator"]
    named = _python(SETUP, **endpoint, OTEL_SERVICE_NAME="my-workers")
    assert named.stdout.split() == ["True", "True", "my-workers"]
    assert _python(SETUP, OTEL_TRACES_EXPORTER="console").stdout.split()[:2] == ["True", "True"]
    disabled = _python(SETUP, **endpoint, OTEL_SDK_DISABLED="true")
    assert disabled.stdout.split() == ["False", "False", "None"]


def test_a_worker_refuses_tracing_it_cannot_do_naming_the_variable() -> None:
    started = _python(
        "import workers.app",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://user:pw-7d1c@127.0.0.1:9",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
    )
    assert started.returncode != 0
    assert started.stderr.strip().splitlines()[-1] == (
        "error: OTEL_EXPORTER_OTLP_PROTOCOL: only http/protobuf is supported, not 'grpc'"
    )
    assert "pw-7d1c" not in started.stderr


SECRET_HEADER = "Authorization: Bearer otlp-SECRET-token"  # curl's form, not the OTLP one


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_EXPORTER_OTLP_HEADERS", SECRET_HEADER),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", f"x-tenant=7,{SECRET_HEADER}"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "otlp-SECRET-token"),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "otlp-SECRET-token"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "otlp-SECRET-token"),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/nonexistent/otlp-SECRET-token.pem"),
        # URL-encoded, these pass the SDK's parser and fail at the first export, quoted.
        ("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20otlp-SECRET%0Atoken"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20otlp-SECRET%0D%0Atoken"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-otlp-SECRET%3A=1"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20otlp-SECRET-%E2%82%AC"),
        ("OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER", "otlp-SECRET-token"),
        ("OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER", "otlp-SECRET-token"),
    ],
)
def test_an_invalid_otlp_setting_is_refused_naming_it_never_its_value(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv(variable, value)
    with pytest.raises(tracing.TracingConfigError) as refused:
        tracing._exporter("otlp")
    assert str(refused.value).startswith(f"{variable}: ")
    assert "SECRET" not in str(refused.value) + caplog.text


def test_otlp_settings_in_the_exporters_forms_are_taken_and_curls_is_refused() -> None:
    valid = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://user:pw@collector.example:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20otlp-token, x-tenant = 7,",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2.5",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "GZIP",
    }
    assert otlp_problem(valid) is None
    started = _python(SETUP, **valid)
    assert started.returncode == 0, started.stderr
    assert started.stdout.split()[:2] == ["True", "True"]
    # A worker given curl's form stops, naming the variable and not the credential.
    curl = _python("import workers.app", **(valid | {"OTEL_EXPORTER_OTLP_HEADERS": SECRET_HEADER}))
    assert curl.returncode != 0 and "SECRET" not in curl.stderr + curl.stdout
    assert (
        curl.stderr.strip()
        .splitlines()[-1]
        .startswith("error: OTEL_EXPORTER_OTLP_HEADERS: entry 1 of 1 is not name=value")
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_BSP_SCHEDULE_DELAY", "otlp-SECRET-token"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "otlp-SECRET-token"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0"),
        ("OTEL_RESOURCE_ATTRIBUTES", "team=a,otlp-SECRET-token"),
    ],
)
def test_invalid_sdk_settings_stop_a_worker_naming_the_variable_never_its_value(
    variable: str, value: str
) -> None:
    started = _python(
        "import workers.app", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", **{variable: value}
    )
    assert started.returncode != 0
    assert started.stderr.strip().splitlines()[-1].startswith(f"error: {variable}: ")
    assert "SECRET" not in started.stderr + started.stdout


def test_an_sdk_error_while_building_the_exporter_is_refused_without_its_text(
    tmp_path: Any,
) -> None:
    # A credential provider that exists but gives no requests.Session: the SDK raises a
    # RuntimeError quoting the provider's name, the setting's value.
    info = tmp_path / "otlp_secret_provider-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: otlp-secret\nVersion: 0\n")
    (info / "entry_points.txt").write_text(
        "[opentelemetry_otlp_credential_provider]\notlp-SECRET-provider = builtins:object\n"
    )
    started = _python(
        "import workers.app",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER="otlp-SECRET-provider",
        PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    )
    assert started.returncode != 0
    assert started.stderr.strip().splitlines()[-1] == (
        "error: OTEL_EXPORTER_OTLP_*: the OTLP exporter refused these settings (RuntimeError)"
    )
    assert "SECRET" not in started.stderr + started.stdout
