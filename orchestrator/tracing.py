"""OpenTelemetry traces: setup, and the trace context carried in Celery messages.

Tracing is off unless the standard variables turn it on: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) exports over OTLP/HTTP, ``OTEL_TRACES_EXPORTER`` picks
``otlp``, ``console`` or ``none``, ``OTEL_SERVICE_NAME`` names the process, and
``OTEL_SDK_DISABLED=true`` turns everything off. When it is off no provider is installed, no
signal handler is connected and a span costs the no-op API's call.

An application that sets up OpenTelemetry itself (its own ``TracerProvider``) keeps it: the
spans go to its provider, and this module only connects the Celery propagation.

Only names, ids, counts and outcomes go into spans: never a prompt, an answer, tool arguments
or results, an error's text (it may quote any of them) or a URL.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import Token
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from celery.signals import before_task_publish, task_postrun, task_prerun
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from orchestrator.config.otlp import otlp_problem, sdk_problem
from orchestrator.errors import OrchestratorError

if TYPE_CHECKING:  # the SDK is imported only when tracing is turned on
    from opentelemetry.sdk.trace.export import SpanExporter

TRACER_NAME = "agent_orchestrator"
DEFAULT_SERVICE_NAME = "agent-orchestrator"
OTLP_EXTRA = "agent-orchestrator[otlp]"

# GenAI semantic conventions (https://github.com/open-telemetry/semantic-conventions-genai).
# Written out rather than imported: opentelemetry-semantic-conventions marks these names as
# moved, and its incubating module warns on use.
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_AGENT_ID = "gen_ai.agent.id"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_WORKFLOW_NAME = "gen_ai.workflow.name"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_TYPE = "gen_ai.tool.type"
ERROR_TYPE = "error.type"

# This project's own attributes and events.
RUN_ID = "orchestrator.run.id"
RUN_KIND = "orchestrator.run.kind"
RUN_MEMBERS = "orchestrator.run.members"
MEMBER = "orchestrator.member"
OUTCOME = "orchestrator.outcome"
BUDGET_DENIED = "orchestrator.budget.denied"
BUDGET_REASON = "orchestrator.budget.reason"
LEASE_TAKEOVER = "orchestrator.lease.takeover"
LEASE_LOST = "orchestrator.lease.lost"

TRACEPARENT = "traceparent"
_W3C = TraceContextTextMapPropagator()
T = TypeVar("T")
_lock = threading.Lock()
_connected = False


class TracingConfigError(OrchestratorError):
    """The ``OTEL_*`` variables ask for something this installation cannot do; the message
    names the variable (never a value: an endpoint may carry credentials)."""


def _exporter_names() -> list[str]:
    """The exporters the environment asks for; none means tracing is off."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named:
        return [name.strip() for name in named.split(",") if name.strip() not in ("", "none")]
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return ["otlp"] if any(os.environ.get(name, "").strip() for name in endpoints) else []


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (known: otlp, console, none)"
        )
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = os.environ.get(variable, "").strip()
        if protocol not in ("", "http/protobuf"):
            raise TracingConfigError(
                f"{variable}: only http/protobuf is supported, not {protocol!r}"
            )
    problem = otlp_problem()
    if problem is not None:
        raise TracingConfigError(problem)
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise TracingConfigError(
            f"OTEL_EXPORTER_OTLP_ENDPOINT is set but the OTLP exporter is not installed "
            f"(pip install '{OTLP_EXTRA}')"
        ) from None
    return _built(OTLPSpanExporter, "OTEL_EXPORTER_OTLP_*", "the OTLP exporter")


def _built(make: Callable[[], T], variables: str, what: str) -> T:
    """``make()``; any failure becomes a ``TracingConfigError`` naming ``variables``. The SDK's
    errors quote settings (a credential provider's name), so neither their message nor the
    exception is kept (raised once the handler is left: no cause, no context)."""
    failure = ""
    try:
        return make()
    except Exception as error:
        failure = type(error).__name__
    raise TracingConfigError(f"{variables}: {what} refused these settings ({failure})") from None


def _install_provider(exporters: list[str]) -> None:
    """Install the SDK's provider with a batch processor per exporter (the spans leave from a
    background thread, so a member never waits for a collector)."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    problem = sdk_problem()
    if problem is not None:
        raise TracingConfigError(problem)
    resource = _built(Resource.create, "OTEL_RESOURCE_ATTRIBUTES", "the resource")
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    for name in exporters:
        exporter = _exporter(name)
        processor = _built(
            partial(BatchSpanProcessor, exporter), "OTEL_BSP_*", "the batch span processor"
        )
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)


def enabled() -> bool:
    """Whether spans go anywhere: an SDK (or other real) provider is installed."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def configure() -> bool:
    """Set tracing up for this process as the environment says (safe to call again); True
    when it is on. Raises ``TracingConfigError`` for a configuration it cannot honour."""
    global _connected
    with _lock:
        if not enabled():
            exporters = _exporter_names()
            if not exporters:
                return False
            _install_provider(exporters)
        if not _connected:
            # weak=False: the handlers are module functions, but say it plainly.
            before_task_publish.connect(_inject_into_message, weak=False)
            task_prerun.connect(_attach_from_message, weak=False)
            task_postrun.connect(_detach, weak=False)
            _connected = True
        return True


def flush(timeout_ms: int = 5000) -> None:
    """Export the spans still buffered (before a worker exits)."""
    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        force_flush(timeout_ms)


def tracer() -> trace.Tracer:
    """This project's tracer (the no-op one while tracing is off)."""
    return trace.get_tracer(TRACER_NAME)


def current_traceparent() -> str | None:
    """The current span's context as a W3C ``traceparent`` string, or None without one."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get(TRACEPARENT)


def context_of(traceparent: str | None) -> otel_context.Context | None:
    """The context a stored ``traceparent`` names (None when there is none, or it is not a
    valid one)."""
    if not traceparent:
        return None
    extracted = _W3C.extract({TRACEPARENT: traceparent})
    if not trace.get_current_span(extracted).get_span_context().is_valid:
        return None
    return extracted


@contextmanager
def span_under(
    parent: otel_context.Context | None,
    name: str,
    attributes: Mapping[str, AttributeValue] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
) -> Iterator[Span]:
    """A current span whose parent is ``parent`` (else the current span). When the current
    span is another one (the work was published by a step other than the parent), it is kept
    as a link: a run's spans hang from the run, and each still says what set it off."""
    links: list[Link] = []
    if parent is not None:
        publisher = trace.get_current_span().get_span_context()
        own = trace.get_current_span(parent).get_span_context()
        if publisher.is_valid and publisher.span_id != own.span_id:
            links.append(Link(publisher))
    with tracer().start_as_current_span(
        name,
        context=parent,
        kind=kind,
        attributes=attributes,
        links=links,
        record_exception=False,  # an exception's text may quote a prompt or a tool argument
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as error:
            fail(span, type(error).__name__)
            raise


def workflow_attributes(
    run_id: str, kind: str, members: int | None = None
) -> dict[str, AttributeValue]:
    """The attributes of a run's root span (``invoke_workflow {kind}``)."""
    attributes: dict[str, AttributeValue] = {
        GEN_AI_OPERATION_NAME: "invoke_workflow",
        GEN_AI_WORKFLOW_NAME: kind,
        RUN_ID: run_id,
        RUN_KIND: kind,
    }
    if members is not None:
        attributes[RUN_MEMBERS] = members
    return attributes


def fail(span: Span, error_type: str) -> None:
    """Mark ``span`` as failed with a low-cardinality ``error.type`` (never a message)."""
    span.set_attribute(ERROR_TYPE, error_type)
    span.set_status(trace.Status(trace.StatusCode.ERROR))


def event(name: str, attributes: Mapping[str, AttributeValue] | None = None) -> None:
    """Add an event to the current span (nothing when there is none)."""
    trace.get_current_span().add_event(name, attributes or {})


# Celery propagation: the publisher's context goes in each message's headers; the task runs
# with it as its current context. Header names are W3C's (``traceparent``, ``tracestate``).
_attached: dict[str, Token[otel_context.Context]] = {}


def _inject_into_message(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None:
        propagate.inject(headers)


def _attach_from_message(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    request = getattr(task, "request", None)
    if task_id is None or request is None:
        return
    carrier = {
        key: value
        for key in ("traceparent", "tracestate", "baggage")
        if isinstance(value := getattr(request, key, None), str)
    }
    if carrier:
        _attached[task_id] = otel_context.attach(propagate.extract(carrier))


def _detach(task_id: str | None = None, **_: Any) -> None:
    token = _attached.pop(task_id or "", None)
    if token is not None:
        otel_context.detach(token)
