"""A local OTLP/HTTP trace receiver, as a collector would be: it accepts ``POST /v1/traces``
with an ``ExportTraceServiceRequest`` in protobuf, decodes it with ``opentelemetry-proto`` and
keeps the spans, with the service name of the resource that sent them."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.helpers import wait_for
from tests.servers.wire_server import WireServer, read_body, send
from tests.tracing.trace_support import SpanRecord


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(item) for item in value.array_value.values)
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _record(span: Span, service: str) -> SpanRecord:
    return SpanRecord(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex(),
        name=span.name,
        kind=Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
        service=service,
        attributes=_attributes(span.attributes),
        start_ns=span.start_time_unix_nano,
        events=[(event.name, _attributes(event.attributes)) for event in span.events],
        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
        error=span.status.code == Status.STATUS_CODE_ERROR,
    )


class OtlpReceiver(WireServer):
    """Listens on a free loopback port until ``close()``; ``endpoint`` is what
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` should say."""

    def __init__(self) -> None:
        self._spans: list[SpanRecord] = []
        self._lock = threading.Lock()
        self.requests = 0
        super().__init__()
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def handle_post(self, request: BaseHTTPRequestHandler) -> None:
        body = read_body(request)
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        if request.path != "/v1/traces":
            request.send_error(404)
            return
        self._take(ExportTraceServiceRequest.FromString(body))
        reply = ExportTraceServiceResponse().SerializeToString()
        send(request, 200, reply, content_type="application/x-protobuf")

    def _take(self, request: ExportTraceServiceRequest) -> None:
        received: list[SpanRecord] = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            service = str(resource.get("service.name", ""))
            for scope_spans in resource_spans.scope_spans:
                received.extend(_record(span, service) for span in scope_spans.spans)
        with self._lock:
            self._spans.extend(received)
            self.requests += 1

    def spans(self, trace_id: str | None = None) -> list[SpanRecord]:
        """The spans received so far (of one trace, when given)."""
        with self._lock:
            return [s for s in self._spans if trace_id is None or s.trace_id == trace_id]

    def wait_for(
        self, done: Callable[[list[SpanRecord]], bool], trace_id: str, timeout_s: float = 30
    ) -> list[SpanRecord]:
        """The trace's spans once ``done`` says they are all in (the workers export in
        batches, after their tasks return); fails after ``timeout_s``."""
        return wait_for(
            lambda: spans if done(spans := self.spans(trace_id)) else None,
            "the trace's spans all arrived",
            timeout_s,
        )
