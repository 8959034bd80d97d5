"""Submitting a run: the checks against the live workers, then the run written to Redis and its
admission sent, under the span that starts the run's trace. A run Redis refuses to write is
removed again, so nothing half-submitted is left for a sweep to admit."""

from __future__ import annotations

from opentelemetry.trace import SpanKind

from orchestrator import tracing
from orchestrator.client import checks
from orchestrator.client.connections import TaskSender
from orchestrator.config.settings import Settings
from orchestrator.errors import WritesRefusedError
from orchestrator.models.requests import RunRequest
from orchestrator.state import events as run_events
from orchestrator.state.connection import refusal_message, write_refusal
from orchestrator.state.keys import admit_task_id, new_run_id
from orchestrator.state.store import RunStore


def submit(
    store: RunStore,
    settings: Settings,
    sender: TaskSender,
    request: RunRequest,
    items: list[str] | None,
    first_events: tuple[run_events.Event, ...],
) -> str:
    """Check ``request``, create its run and send its admission; returns the run id. Raises
    ``InvalidRunError`` (nothing written) or ``WritesRefusedError`` (nothing left)."""
    specs = checks.request_specs(request)
    checks.check_prices(settings, request.budget, specs)
    checks.check_tools(store.client, specs)
    checks.check_agents(store.client, specs)
    checks.check_endpoints(store.client, specs)
    checks.check_group(store.client, request.group)
    run_id = new_run_id(request.group)
    for event in first_events:
        event.run_id = run_id
    # The run's trace starts here: every span of the run, on any worker, hangs from this
    # one, whose traceparent is kept with the run.
    name = f"invoke_workflow {request.kind}"
    attributes = tracing.workflow_attributes(run_id, request.kind, request.member_count)
    with tracing.span_under(None, name, attributes, SpanKind.PRODUCER):
        traceparent = tracing.current_traceparent()
        try:
            store.create_run(run_id, request, items, first_events, traceparent)
            sender.send(
                "tasks.coordinator.admit_run",
                (run_id,),
                task_id=admit_task_id(run_id),
                queue="coordinator",
            )
        except Exception as error:
            refused = write_refusal(error)
            if refused is None:
                raise
            # Whatever was written goes (deleting is what a full Redis still allows): a
            # run left pending would be admitted by a sweep, though its submit failed.
            store.discard(run_id)
            message = f"Redis refuses writes: {refusal_message(refused)} (nothing submitted)"
            raise WritesRefusedError(message) from None
    return run_id
