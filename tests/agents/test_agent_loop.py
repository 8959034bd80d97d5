"""The agent loop: turns, failures, cancellation and the run record."""

from __future__ import annotations

from datetime import datetime

from orchestrator import ToolPolicy, tool
from orchestrator.config.settings import Settings
from orchestrator.models import (
    KNOWN_PROVIDERS,
    AgentCheckpoint,
    AgentSpec,
    Message,
    ModelConfig,
    ToolCall,
    Usage,
)
from orchestrator.models.cache_records import CacheDecision
from tests.helpers import providers
from workers.agent.loop import AgentEvents, run_agent
from workers.execution.cancellation import CancelToken
from workers.providers import PROVIDERS
from workers.tools.registry import ToolRegistry
from workers.tools.runner import ToolRunner


def spec(max_turns: int = 5, **options: object) -> AgentSpec:
    return AgentSpec(
        name="agent",
        instructions="Be brief.",
        model=ModelConfig(provider="scripted", options=options),
        max_turns=max_turns,
    )


def test_a_final_text_ends_the_run_ok_with_usage_and_record() -> None:
    run = run_agent(spec(), "question", run_id="r1", provider_for=providers())
    assert run.output.outcome == "ok" and run.output.succeeded()
    assert run.output.turns == 1 and run.output.tokens.total_tokens > 0
    assert [m.role for m in run.new_messages] == ["user", "assistant"]
    assert run.context == run.new_messages  # the instructions are not part of the context
    assert [c.kind for c in run.record.calls] == ["model"]
    assert run.record.calls[0].usage == run.output.tokens
    assert run.output.started_at and run.output.ended_at and run.output.duration_ms >= 0


def test_tool_calls_without_tools_are_answered_with_an_error_the_model_reads() -> None:
    script = [{"tool_calls": [{"name": "search", "arguments": {}}]}, {"text": "gave up"}]
    run = run_agent(spec(script=script), "q", run_id="r1", provider_for=providers())
    assert run.output.answer == "gave up" and run.output.turns == 2
    assert run.output.tool_calls == 1
    tool_message = run.new_messages[2]
    assert tool_message.role == "tool" and "'search' is not available" in tool_message.content
    assert [c.kind for c in run.record.calls] == ["model", "tool", "model"]


def test_a_listed_tool_this_worker_does_not_serve_is_named_as_such() -> None:
    # The agent may call it (submit found a worker serving it); the worker running the agent
    # lacks its module. The message must point there, not at the agent's tool list.
    script = [{"tool_calls": [{"name": "search", "arguments": {}}]}, {"text": "gave up"}]
    listed = spec(script=script).model_copy(update={"tools": ["search"]})
    run = run_agent(listed, "q", run_id="r1", provider_for=providers())
    assert run.new_messages[2].content == (
        "tool 'search' is not served by the worker running this agent: add its module to that "
        "worker's ORCHESTRATOR_TOOL_MODULES"
    )


def test_max_turns_without_a_final_answer_is_an_error() -> None:
    script = [{"tool_calls": [{"name": "t", "arguments": {}}]}] * 3
    run = run_agent(spec(max_turns=2, script=script), "q", run_id="r1", provider_for=providers())
    assert run.output.outcome == "error"
    assert run.output.error == "max_turns (2) reached: the last turn's 1 tool call(s) were not run"


def test_provider_failure_becomes_an_error_output() -> None:
    run = run_agent(spec(fail_on="q"), "q", run_id="r1", provider_for=providers())
    assert run.output.outcome == "error" and "ProviderError" in (run.output.error or "")
    assert run.record.calls[0].status == "error"


def test_cancelled_token_stops_before_the_next_model_call() -> None:
    cancel = CancelToken()
    cancel.cancel("user")
    run = run_agent(spec(), "q", run_id="r1", cancel=cancel, provider_for=providers())
    assert run.output.outcome == "cancelled" and run.output.turns == 0


def test_workers_implement_exactly_the_providers_the_client_accepts() -> None:
    assert set(PROVIDERS) == set(KNOWN_PROVIDERS)


def test_a_provider_the_worker_lacks_is_an_error_output_not_a_crash() -> None:
    def no_provider(name: str):  # type: ignore[no-untyped-def]
        raise LookupError(f"no {name} here")

    run = run_agent(spec(), "q", run_id="r1", provider_for=no_provider)
    assert run.output.outcome == "error" and "no scripted here" in (run.output.error or "")


def test_without_a_prompt_the_agent_continues_its_context() -> None:
    context = [Message(role="user", content="first"), Message(role="assistant", content="a")]
    context.append(Message(role="user", content="second question"))
    run = run_agent(spec(), context=context, run_id="r1", provider_for=providers())
    assert [m.role for m in run.new_messages] == ["assistant"]
    assert "second question" in run.output.answer
    assert run.context == [*context, *run.new_messages]


class Recorder(AgentEvents):
    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    def model_turn(
        self,
        turn: int,
        started: datetime,
        usage: Usage,
        tool_calls: list[str],
        error: str | None,
        final: bool,
        ended: datetime | None = None,
        cache: CacheDecision | None = None,
        output_error: str | None = None,
    ) -> None:
        self.seen.append(("turn", (turn, tool_calls, final)))

    def tool_start(self, call: ToolCall) -> None:
        self.seen.append(("tool_start", call.name))

    def tool_end(self, call: ToolCall, status: str, error: str | None) -> None:
        self.seen.append(("tool_end", (call.name, status)))


def test_turns_and_tool_calls_are_reported_in_order_and_the_last_turn_is_final() -> None:
    script = [{"tool_calls": [{"name": "search", "arguments": {}}]}, {"text": "done"}]
    events = Recorder()
    run_agent(spec(script=script), "q", run_id="r1", events=events, provider_for=providers())
    assert events.seen == [
        ("turn", (1, ["search"], False)),
        ("tool_start", "search"),
        ("tool_end", ("search", "error")),
        ("turn", (2, [], True)),
    ]


class CountingModel:
    """The scripted model, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self._inner = PROVIDERS["scripted"](Settings())

    def complete(self, config, messages, cancel, tools):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self._inner.complete(config, messages, cancel, tools)


def test_a_resumed_run_does_not_repeat_the_turns_of_its_checkpoint() -> None:
    script = [
        {"tool_calls": [{"name": "t", "arguments": {}}]},
        {"tool_calls": [{"name": "t", "arguments": {}}]},
        {"text": "done"},
    ]
    saved: list[AgentCheckpoint] = []
    first = CountingModel()
    whole = run_agent(
        spec(script=script), "q", run_id="r", provider_for=lambda _: first, checkpoint=saved.append
    )
    assert first.calls == 3 and [c.turns for c in saved] == [1, 2]
    second = CountingModel()
    resumed = run_agent(
        spec(script=script), "q", run_id="r", provider_for=lambda _: second, resume=saved[0]
    )
    assert second.calls == 2  # turns 2 and 3 only
    assert resumed.new_messages == whole.new_messages
    assert resumed.output.turns == 3 and resumed.output.tokens == whole.output.tokens
    assert [c.kind for c in resumed.record.calls] == ["model", "tool", "model", "tool", "model"]


STARTED: list[str] = []  # the tags of the ``side`` calls that ran


@tool
def boom() -> str:
    """Fail."""
    raise RuntimeError("broken")


@tool
def side(tag: str) -> str:
    """A side effect, noted in ``STARTED``."""
    STARTED.append(tag)
    return f"done {tag}"


def test_a_run_resumed_after_a_fail_fast_failure_starts_no_call_queued_behind_it() -> None:
    turn = {
        "tool_calls": [{"name": "boom"}, *[{"name": "side", "arguments": {"tag": t}} for t in "AB"]]
    }
    agent = AgentSpec(
        name="agent",
        model=ModelConfig(provider="scripted", options={"script": [turn, {"text": "after"}]}),
        tools=["boom", "side"],
        tool_policy=ToolPolicy(mode="parallel", max_concurrency=1, join="fail_fast"),
    )
    tools = ToolRunner(ToolRegistry({"boom": boom, "side": side}))
    saved: list[AgentCheckpoint] = []
    STARTED.clear()
    whole = run_agent(
        agent, "go", run_id="r", tools=tools, checkpoint=saved.append, provider_for=providers()
    )
    # The state saved when the failure was known: its worker may die right after saving it.
    failed = next(c for c in saved if any(m.role == "tool" for m in c.new_messages))
    resumed = run_agent(
        agent, "go", run_id="r", tools=tools, resume=failed, provider_for=providers()
    )
    assert STARTED == []
    assert [m.content for m in resumed.new_messages if m.role == "tool"] == [
        m.content for m in whole.new_messages if m.role == "tool"
    ]
