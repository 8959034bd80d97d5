"""Spans for the tests: an in-memory exporter in the test process, one record type for spans
from it and from an OTLP receiver, and the span tree of a trace as text."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orchestrator import tracing

TEST_SERVICE = "ao-tests"
_exporter: InMemorySpanExporter | None = None


def memory_exporter() -> InMemorySpanExporter:
    """The test process's exporter, installed once: OpenTelemetry's global provider can be set
    once per process, so every test shares it and clears it first."""
    global _exporter
    if _exporter is None:
        exporter = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": TEST_SERVICE}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        assert tracing.configure(), "the test provider was not taken as tracing on"
        _exporter = exporter
    return _exporter


@dataclass
class SpanRecord:
    """One finished span, wherever it was exported from; ids in hex."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    service: str
    attributes: dict[str, Any]
    start_ns: int = 0
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    error: bool = False

    def event_names(self) -> list[str]:
        return [name for name, _ in self.events]


def from_readable(span: ReadableSpan) -> SpanRecord:
    """A span of the in-memory exporter."""
    context = span.get_span_context()
    assert context is not None
    return SpanRecord(
        trace_id=f"{context.trace_id:032x}",
        span_id=f"{context.span_id:016x}",
        parent_id=f"{span.parent.span_id:016x}" if span.parent else "",
        name=span.name,
        kind=span.kind.name,
        service=str(span.resource.attributes.get("service.name", "")),
        attributes=dict(span.attributes or {}),
        start_ns=span.start_time or 0,
        events=[(e.name, dict(e.attributes or {})) for e in span.events],
        links=[(f"{ln.context.trace_id:032x}", f"{ln.context.span_id:016x}") for ln in span.links],
        error=span.status.status_code == trace.StatusCode.ERROR,
    )


def finished(exporter: InMemorySpanExporter) -> list[SpanRecord]:
    return [from_readable(span) for span in exporter.get_finished_spans()]


def one_trace(spans: Iterable[SpanRecord]) -> str:
    """The trace id every span shares (fails if there are several)."""
    ids = {span.trace_id for span in spans}
    assert len(ids) == 1, f"spans of {len(ids)} traces: {sorted(ids)}"
    return ids.pop()


def render_tree(spans: list[SpanRecord]) -> str:
    """The spans as an indented tree (siblings in the order they started), with each span's
    service and its events: what a trace viewer shows of the trace."""
    children: dict[str, list[SpanRecord]] = {}
    ids = {span.span_id for span in spans}
    roots = [span for span in spans if span.parent_id not in ids]
    for span in spans:
        children.setdefault(span.parent_id, []).append(span)
    lines: list[str] = []

    def walk(span: SpanRecord, depth: int) -> None:
        events = f"  events: {', '.join(span.event_names())}" if span.events else ""
        lines.append(f"{'    ' * depth}{span.name}  [{span.service}]{events}")
        for child in sorted(children.get(span.span_id, []), key=lambda s: s.start_ns):
            walk(child, depth + 1)

    for root in sorted(roots, key=lambda s: s.start_ns):
        walk(root, 0)
    return "\n".join(lines)
