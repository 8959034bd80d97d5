"""The spans a worker makes, after the OpenTelemetry GenAI semantic conventions.

A run is one trace. Its root is the client's submit span; its W3C ``traceparent`` is kept in
the run's hash, so every step of the run, whichever worker takes it and whenever (admission,
members, the chord body, a watchdog's recovery), hangs from that root, with a link to the
span that published it. A worker that finds no traceparent (the client did not trace) starts
the run's root itself and stores it, so that the run is still one trace.

Spans carry names, ids, token counts and outcomes only (see ``orchestrator/tracing.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from opentelemetry.context import Context
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from orchestrator import tracing as t
from orchestrator.models import AgentOutput, AgentSpec, ModelConfig, ToolCall, Usage
from orchestrator.state.store import RunStore, Sweep

# ``gen_ai.provider.name`` is the API's vendor; the OpenAI surfaces are both OpenAI's. Other
# names (``scripted``) are this project's own.
PROVIDER_NAMES = {"openai": "openai", "openai_responses": "openai", "anthropic": "anthropic"}

# ``error.type`` of an agent that ended in error, from the start of its error (low
# cardinality: never the error's text, which may quote a prompt or a tool argument).
_AGENT_ERRORS = (
    ("timed out", "timeout"),
    ("lease lost", "lease_lost"),
    ("max_turns", "max_turns"),
    ("budget", "budget_exceeded"),
    ("internal error", "internal"),
)


def run_context(store: RunStore, run_id: str) -> Context | None:
    """The context of the run's root span (None while tracing is off)."""
    if not t.enabled():
        return None
    return _run_context(store, run_id)


@lru_cache(maxsize=1024)
def _run_context(store: RunStore, run_id: str) -> Context | None:
    # A run's traceparent never changes once set: one read per run and process.
    stored = store.traceparent(run_id)
    if stored is None:
        root = _start_run_trace(store, run_id)
        stored = store.adopt_traceparent(run_id, root) if root else None
    return t.context_of(stored)


def _start_run_trace(store: RunStore, run_id: str) -> str | None:
    """A root span for a run whose client did not trace; its traceparent."""
    kind: str
    try:
        kind = store.request(run_id).kind
    except (LookupError, ValueError):
        kind = "run"
    with t.span_under(Context(), f"invoke_workflow {kind}", t.workflow_attributes(run_id, kind)):
        return t.current_traceparent()


@contextmanager
def run_span(
    store: RunStore,
    run_id: str,
    name: str,
    attributes: dict[str, AttributeValue] | None = None,
) -> Iterator[Span]:
    """A span of one step of run ``run_id``, under the run's root."""
    parent = run_context(store, run_id)
    with t.span_under(parent, name, {t.RUN_ID: run_id, **(attributes or {})}) as span:
        yield span


def agent_attributes(
    spec: AgentSpec, name: str, member: str, conversation_id: str | None
) -> dict[str, AttributeValue]:
    """The attributes an agent's span starts with."""
    attributes: dict[str, AttributeValue] = {
        t.GEN_AI_OPERATION_NAME: "invoke_agent",
        t.GEN_AI_AGENT_NAME: name,
        t.GEN_AI_AGENT_ID: spec.agent_id,
        t.MEMBER: member,
        **_model_attributes(spec.model),
    }
    if conversation_id:
        attributes[t.GEN_AI_CONVERSATION_ID] = conversation_id
    return attributes


def end_agent(span: Span, output: AgentOutput) -> None:
    """Record how an agent ended on its span: outcome, tokens, and an error type."""
    span.set_attribute(t.OUTCOME, output.outcome)
    span.set_attributes(usage_attributes(output.tokens))
    if output.outcome == "error":
        error = output.error or ""
        kind = next((kind for start, kind in _AGENT_ERRORS if error.startswith(start)), "_OTHER")
        t.fail(span, kind)


def chat_attributes(config: ModelConfig) -> dict[str, AttributeValue]:
    """The attributes a model call's span starts with."""
    return {
        t.GEN_AI_OPERATION_NAME: "chat",
        t.GEN_AI_REQUEST_MAX_TOKENS: config.max_output_tokens,
        **_model_attributes(config),
    }


def _model_attributes(config: ModelConfig) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        t.GEN_AI_PROVIDER_NAME: PROVIDER_NAMES.get(config.provider, config.provider),
        t.GEN_AI_REQUEST_MODEL: config.model,
        "orchestrator.model.provider": config.provider,
    }
    if config.endpoint:  # the name the operator declared, never its URL
        attributes["orchestrator.model.endpoint"] = config.endpoint
    return attributes


def usage_attributes(usage: Usage) -> dict[str, AttributeValue]:
    """Token counts as the conventions count them: ``input_tokens`` includes the tokens read
    from and written to a prompt cache. Anthropic reports those beside its input tokens,
    OpenAI its cached tokens inside them (``orchestrator.models.Usage``)."""
    beside = usage.cache_creation_input_tokens + usage.cache_read_input_tokens
    return {
        t.GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens + beside,
        t.GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens,
        t.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: usage.cache_read_input_tokens + usage.cached_tokens,
        t.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: usage.cache_creation_input_tokens,
        "orchestrator.usage.cost_usd": usage.cost_usd,
    }


def tool_attributes(call: ToolCall) -> dict[str, AttributeValue]:
    """The attributes of a tool call's span (never its arguments or result)."""
    return {
        t.GEN_AI_OPERATION_NAME: "execute_tool",
        t.GEN_AI_TOOL_NAME: call.name,
        t.GEN_AI_TOOL_CALL_ID: call.id,
        t.GEN_AI_TOOL_TYPE: "function",
    }


def sweep_attributes(sweep: Sweep) -> dict[str, AttributeValue]:
    """What a watchdog's sweep of a run found to do."""
    return {
        "orchestrator.sweep.republished": len(sweep.republish),
        "orchestrator.sweep.expired": len(sweep.expire),
        "orchestrator.sweep.abandoned": len(sweep.abandon) + len(sweep.unstarted),
        "orchestrator.sweep.action": sweep.action,
    }


def budget_denied(reason: str, member: str | None = None) -> None:
    """A budget denial, as an event of the current span (the budget's reason names limits and
    numbers only)."""
    attributes: dict[str, AttributeValue] = {t.BUDGET_REASON: reason}
    if member is not None:
        attributes[t.MEMBER] = member
    t.event(t.BUDGET_DENIED, attributes)


def lease_taken_over(member: str, resumed: bool) -> None:
    """This execution took over a member another execution held (its lease expired, or its
    worker died); ``resumed`` when it goes on from that execution's checkpoint."""
    t.event(t.LEASE_TAKEOVER, {t.MEMBER: member, "orchestrator.resumed": resumed})


def lease_lost(member: str) -> None:
    """This execution lost its member to another one: its result was discarded."""
    t.event(t.LEASE_LOST, {t.MEMBER: member})
