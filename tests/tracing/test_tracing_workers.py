"""A run is one trace across processes: the client's submit span (this process, in-memory
exporter) is its root, and real workers configured by ``OTEL_EXPORTER_OTLP_ENDPOINT`` and
``OTEL_SERVICE_NAME`` export their spans to a local OTLP/HTTP receiver that decodes the
protobuf. Budget denials and lease takeovers are span events."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator import AgentSpec, Budget, Client, ModelConfig, RunFailedError
from orchestrator.local import LocalRedis
from orchestrator.state.keys import RunKeys
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, scripted, start_workers, wait_for
from tests.servers.otlp_receiver import OtlpReceiver
from tests.tracing.trace_support import (
    TEST_SERVICE,
    SpanRecord,
    finished,
    memory_exporter,
    one_trace,
    render_tree,
)

WORKER_SERVICE = "ao-traced-workers"


def otel_env(receiver: OtlpReceiver) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_SERVICE_NAME": WORKER_SERVICE,
        # Batches leave every 50 ms instead of 5 s, so that a test waits less for them.
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def traced(receiver: OtlpReceiver, log_dir: Path) -> Iterator[tuple[Client, dict[str, str]]]:
    """Two traced workers on a Redis of their own, and a client in this (traced) process."""
    server = LocalRedis()
    env = {"ORCHESTRATOR_REDIS_URL": server.url, **FAST_TIMINGS, **otel_env(receiver)}
    workers = start_workers(env, ["traced1", "traced2"], log_dir)
    memory_exporter()
    try:
        yield Client(redis_url=server.url), env
    finally:
        for worker in workers:
            worker.stop()
        server.stop()


def submit_root(name: str) -> SpanRecord:
    """The root span the client made for the run just submitted."""
    (root,) = [span for span in finished(memory_exporter()) if span.name == name]
    return root


def named(spans: list[SpanRecord], name: str) -> list[SpanRecord]:
    return [span for span in spans if span.name == name]


def children(spans: list[SpanRecord], parent: SpanRecord) -> list[str]:
    return sorted(span.name for span in spans if span.parent_id == parent.span_id)


def calls(*pairs: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments} for name, arguments in pairs]}


def test_a_map_reduce_is_one_trace_from_submit_to_reducer_across_processes(
    traced: tuple[Client, dict[str, str]], receiver: OtlpReceiver
) -> None:
    client, _ = traced
    memory_exporter().clear()
    # Each mapper calls a local tool and a remote one (a task on the tools queue), then answers.
    script = [calls(("add", {"a": 1, "b": 2}), ("where", {})), {"text": "mapped"}]
    mapper = AgentSpec(
        name="mapper",
        model=ModelConfig(provider="scripted", options={"script": script}),
        tools=["add", "where"],
    )
    handle = client.map_reduce("Trace it", items(3), mapper, scripted("reducer"), 2)
    assert handle.result(60).reducer_output is not None
    root = submit_root("invoke_workflow map_reduce")

    def complete(spans: list[SpanRecord]) -> bool:
        names = Counter(span.name for span in spans)
        return (
            names["chat scripted-1"] == 7
            and names["call_tool where"] == 3
            and all(
                names[name] == 1 for name in ("admit_run", "after_members", "invoke_agent reducer")
            )
        )

    spans = receiver.wait_for(complete, root.trace_id)
    tree = [root, *spans]
    print(f"\nspan tree of map-reduce {handle.id}:\n{render_tree(tree)}")
    one_trace(tree)
    assert {span.service for span in spans} == {WORKER_SERVICE}
    assert root.service == TEST_SERVICE

    # Every step of the run hangs from the client's submit span.
    assert children(tree, root) == [
        "admit_run",
        "after_members",
        "invoke_agent mapper_0",
        "invoke_agent mapper_1",
        "invoke_agent mapper_2",
        "invoke_agent reducer",
    ]
    by_id = {span.span_id: span for span in tree}
    for index in range(3):
        (member,) = named(spans, f"invoke_agent mapper_{index}")
        assert children(tree, member) == [
            "chat scripted-1",
            "chat scripted-1",
            "execute_tool add",
            "execute_tool where",
        ]
        assert member.attributes["gen_ai.operation.name"] == "invoke_agent"
        assert member.attributes["gen_ai.agent.name"] == f"mapper_{index}"
        assert member.attributes["orchestrator.member"] == str(index)
        assert member.attributes["orchestrator.outcome"] == "ok"
        assert member.attributes["orchestrator.run.id"] == handle.id
        # ... and says what published it: the admission, or a mapper whose end let it in.
        (link,) = member.links
        assert by_id[link[1]].name in (
            "admit_run",
            "invoke_agent mapper_0",
            "invoke_agent mapper_1",
        )
    (reducer,) = named(spans, "invoke_agent reducer")
    assert children(tree, reducer) == ["chat scripted-1"]
    assert [by_id[span_id].name for _, span_id in reducer.links] == ["after_members"]

    # The remote tool ran as a task on a tools queue, under the agent's execute_tool span.
    for remote in named(spans, "call_tool where"):
        assert by_id[remote.parent_id].name == "execute_tool where"
        assert remote.kind == "CONSUMER"

    for chat in named(spans, "chat scripted-1"):
        assert chat.kind == "CLIENT"
        assert chat.attributes["gen_ai.operation.name"] == "chat"
        assert chat.attributes["gen_ai.provider.name"] == "scripted"
        assert chat.attributes["gen_ai.request.model"] == "scripted-1"
        assert chat.attributes["gen_ai.usage.input_tokens"] > 0
        assert chat.attributes["gen_ai.usage.output_tokens"] > 0
        assert chat.attributes["gen_ai.usage.cache_read.input_tokens"] == 0
    for tool in named(spans, "execute_tool add"):
        assert tool.attributes["gen_ai.tool.name"] == "add"
        assert tool.attributes["gen_ai.operation.name"] == "execute_tool"


def test_budget_denials_are_events_of_the_step_that_denied(
    traced: tuple[Client, dict[str, str]], receiver: OtlpReceiver
) -> None:
    client, _ = traced
    memory_exporter().clear()
    budget = Budget(max_agents=2)
    handle = client.map_reduce(
        "Denied", items(4), scripted("mapper"), scripted("reducer"), 1, budget
    )
    result = handle.result(60)
    assert [o.outcome for o in result.map_outputs] == ["ok", "ok", "skipped", "skipped"]
    root = submit_root("invoke_workflow map_reduce")

    def denials(spans: list[SpanRecord]) -> dict[str, tuple[str, str]]:
        """Denied member -> (the span that denied it, the reason)."""
        return {
            attributes["orchestrator.member"]: (span.name, attributes["orchestrator.budget.reason"])
            for span in spans
            for name, attributes in span.events
            if name == "orchestrator.budget.denied"
        }

    spans = receiver.wait_for(lambda spans: len(denials(spans)) == 3, root.trace_id)
    one_trace([root, *spans])
    found = denials(spans)
    # Mapper 1's end admitted the next members, so it is where they were denied.
    assert found["2"] == ("invoke_agent mapper_1", "budget: max_agents (2) reached")
    assert found["3"] == ("invoke_agent mapper_1", "budget: max_agents (2) reached")
    assert found["final"] == ("after_members", "budget: max_agents (2) reached")


def test_a_model_call_the_budget_denies_is_an_event_and_no_span(
    traced: tuple[Client, dict[str, str]], receiver: OtlpReceiver
) -> None:
    client, _ = traced
    memory_exporter().clear()
    # The first call fits; the second carries the tool's 4,000-character result and does not.
    script = [calls(("echo", {"text": "x" * 4000})), {"text": "never"}]
    model = ModelConfig(provider="scripted", options={"script": script}, max_output_tokens=100)
    spec = AgentSpec(name="spender", model=model, tools=["echo"])
    handle = client.run_agent(spec, "Echo.", budget=Budget(max_tokens=600))
    with pytest.raises(RunFailedError) as failed:
        handle.result(60)
    output = failed.value.result.output
    assert output.outcome == "error" and output.turns == 1
    root = submit_root("invoke_workflow agent")

    def ended(spans: list[SpanRecord]) -> bool:
        return any(span.name == "invoke_agent spender" for span in spans)

    spans = receiver.wait_for(ended, root.trace_id)
    (agent,) = named(spans, "invoke_agent spender")
    assert agent.error and agent.attributes["error.type"] == "budget_exceeded"
    ((name, attributes),) = agent.events
    assert name == "orchestrator.budget.denied"
    assert attributes["orchestrator.budget.reason"].startswith("budget: max_tokens (600 tokens)")
    assert children([root, *spans], agent) == ["chat scripted-1", "execute_tool echo"]


def test_a_run_submitted_without_tracing_is_still_one_trace(
    traced: tuple[Client, dict[str, str]], receiver: OtlpReceiver
) -> None:
    _, env = traced
    # A client in a process without tracing: its run has no traceparent, and the worker that
    # admits it starts the run's trace.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    submit = (
        "from orchestrator import Client; from tests.helpers import scripted; "
        f"print(Client(redis_url={env['ORCHESTRATOR_REDIS_URL']!r})"
        ".map_reduce('Untraced', ['a', 'b'], scripted('mapper'), scripted('reducer')).id)"
    )
    done = subprocess.run(
        [sys.executable, "-c", submit], capture_output=True, text=True, env=clean, timeout=60
    )
    run_id = done.stdout.strip()
    client = Client(redis_url=env["ORCHESTRATOR_REDIS_URL"])
    client.get_run(run_id).result(60)
    state = redis.Redis.from_url(env["ORCHESTRATOR_REDIS_URL"])
    stored = state.hget(RunKeys(run_id).run, "traceparent")
    assert stored is not None
    trace_id = stored.decode().split("-")[1]

    steps = [
        "admit_run",
        "after_members",
        "invoke_agent mapper_0",
        "invoke_agent mapper_1",
        "invoke_agent reducer",
    ]

    def complete(spans: list[SpanRecord]) -> bool:
        names = Counter(span.name for span in spans)
        return names["invoke_workflow map_reduce"] == 1 and all(names[s] == 1 for s in steps)

    spans = receiver.wait_for(complete, trace_id)
    (root,) = named(spans, "invoke_workflow map_reduce")
    assert root.parent_id == "" and root.service == WORKER_SERVICE
    assert root.attributes["orchestrator.run.id"] == run_id
    assert children(spans, root) == steps


def test_a_lease_takeover_is_an_event_of_the_execution_that_takes_over(
    receiver: OtlpReceiver, tmp_path: Path
) -> None:
    server = LocalRedis()
    env = {"ORCHESTRATOR_REDIS_URL": server.url, **FAST_TIMINGS, **otel_env(receiver)}
    (victim,) = start_workers(env, ["victim"], tmp_path, concurrency=1)
    heir = None
    try:
        memory_exporter().clear()
        client = Client(redis_url=server.url)
        handle = client.run_agent(scripted("slow", latency_ms=1500), "Take your time.")
        holders = RunKeys(handle.id).holders
        state = redis.Redis.from_url(server.url)
        # Wait until an execution (not an admission or a reception) holds the member.
        wait_for(
            lambda: [v for v in state.hvals(holders) if not v.startswith((b"a:", b"r:"))],
            "the member started",
            30,
            0.02,
        )
        victim.kill()
        (heir,) = start_workers(env, ["heir"], tmp_path, concurrency=1)
        assert handle.result(60).output.outcome == "ok"
        root = submit_root("invoke_workflow agent")

        def taken_over(spans: list[SpanRecord]) -> bool:
            return any(span.event_names() for span in named(spans, "invoke_agent slow"))

        spans = receiver.wait_for(taken_over, root.trace_id)
        (agent,) = [s for s in named(spans, "invoke_agent slow") if s.events]
        ((name, attributes),) = agent.events
        assert name == "orchestrator.lease.takeover"
        assert attributes == {"orchestrator.member": "0", "orchestrator.resumed": False}
        assert agent.parent_id == root.span_id and agent.attributes["orchestrator.outcome"] == "ok"
        # The heir's watchdog found the lease expired and published the member again.
        (sweep,) = [
            s for s in named(spans, "sweep_run") if s.attributes["orchestrator.sweep.republished"]
        ]
        assert [span_id for _, span_id in agent.links] == [sweep.span_id]
    finally:
        victim.kill()
        if heir is not None:
            heir.stop()
        server.stop()
