"""The coordinator's steps of a capped chord, called from coordinator tasks, from a finishing
member's completion path (``publish_next`` costs no extra task) and from the watchdog."""

from __future__ import annotations

from celery import Celery

from orchestrator.events import AgentEnd
from orchestrator.keys import REDUCER_MEMBER
from orchestrator.models import AgentOutput, MapReduceResult, Outcome
from orchestrator.run_store import Admission, RunStore, member_name
from workers import canvas

SUMMARY_CHARS = 300


def apply_admission(app: Celery, store: RunStore, run_id: str, admission: Admission) -> None:
    """Publish the admitted members; end the denied ones as ``skipped`` with the reason."""
    pending = [admission]
    while pending:
        step = pending.pop()
        canvas.publish_members(app, run_id, step.admitted)
        for index, reason in step.denied:
            pending.append(end_unrun_member(app, store, run_id, str(index), "skipped", reason))


def end_unrun_member(
    app: Celery, store: RunStore, run_id: str, member: str, outcome: Outcome, reason: str
) -> Admission:
    """End a member that never ran (or was lost in a cancelled run) with ``outcome``."""
    request = store.request(run_id)
    spec = request.reducer if member == REDUCER_MEMBER else request.mapper
    name = member_name(spec.name, member)
    output = AgentOutput.not_run(name, outcome, reason)
    index = None if member == REDUCER_MEMBER else int(member)
    event = AgentEnd(run_id=run_id, name=name, index=index, outcome=outcome, error=reason)
    completion = store.complete(run_id, member, output, event)
    if not completion.stored:
        return Admission()
    if index is None:
        finish_map_reduce(store, run_id, reducer_output=output)
    else:
        canvas.count_member_without_message(app, run_id, index, output)
    return completion.admission


def admit(app: Celery, store: RunStore, run_id: str) -> None:
    """Register the run's chord and publish its first window (safe to repeat: a second
    admission finds the window full and the chord size unchanged)."""
    status = store.status(run_id)
    if status is None or status.state != "pending":
        return
    canvas.register_chord(app, run_id, status.total)
    admission = store.start(run_id)
    apply_admission(app, store, run_id, admission)
    if admission.cancel:
        sweep_run(app, store, run_id)


def sweep_run(app: Celery, store: RunStore, run_id: str) -> None:
    """The watchdog's pass over one run: republish lost members, end abandoned ones, redo a
    step between members that a dead process lost."""
    sweep = store.sweep(run_id)
    if sweep.state not in ("pending", "running"):
        store.forget_active(run_id)
        return
    for member in sweep.republish:
        if member == REDUCER_MEMBER:
            canvas.publish_reducer(app, run_id)
        else:
            canvas.publish_members(app, run_id, [int(member)])
    for member in sweep.abandon:
        admission = end_unrun_member(
            app, store, run_id, member, "cancelled", f"cancelled: {sweep.cancel}"
        )
        apply_admission(app, store, run_id, admission)
    if sweep.action == "readmit":
        admit(app, store, run_id)
    elif sweep.action == "regate":
        gate_reducer(app, store, run_id, store.outputs(run_id))
    elif sweep.action == "refinish":
        reducer_output = store.stored_output(run_id, REDUCER_MEMBER)
        if reducer_output is not None:
            finish_map_reduce(store, run_id, reducer_output)


def summaries(outputs: list[AgentOutput]) -> list[str]:
    """One line per successful mapper: ``- [name] answer`` cut to 300 characters."""
    return [f"- [{o.name}] {o.answer[:SUMMARY_CHARS]}" for o in outputs if o.succeeded()]


def reducer_prompt(task: str, outputs: list[AgentOutput]) -> str:
    lines = "\n".join(summaries(outputs))
    return (
        f"Original task: {task}\n\nResults from {len(outputs)} sub-agents:\n{lines}\n\n"
        "Combine these into a single coherent result."
    )


def gate_reducer(app: Celery, store: RunStore, run_id: str, outputs: list[AgentOutput]) -> None:
    """The chord body: run the reducer if the budget admits it, else end with the summaries."""
    request = store.request(run_id)
    verdict, reason = store.gate_reducer(run_id, reducer_prompt(request.task, outputs))
    if verdict == "admitted":
        canvas.publish_reducer(app, run_id)
        return
    outcome: Outcome = "skipped" if verdict == "denied" else "cancelled"
    skipped = AgentOutput.not_run(request.reducer.name, outcome, reason)
    finish_map_reduce(store, run_id, reducer_output=skipped)


def finish_map_reduce(store: RunStore, run_id: str, reducer_output: AgentOutput) -> None:
    """End the run with its outputs in item order. A reducer that did not run (budget, cancel)
    leaves the unreduced summaries as the answer; a reducer that failed fails the run."""
    request = store.request(run_id)
    outputs = store.outputs(run_id)
    status = store.status(run_id)
    cancel = status.cancel_reason if status else None
    if reducer_output.outcome == "ok":
        reduced = reducer_output.answer
    elif reducer_output.outcome in ("skipped", "cancelled"):
        reduced = "\n".join(summaries(outputs))
    else:
        reduced = ""
    result = MapReduceResult(
        task=request.task,
        map_outputs=outputs,
        reduced_answer=reduced,
        reducer_output=reducer_output,
    )
    if cancel:
        store.finalize(run_id, "cancelled", result.model_dump_json(), cancel)
    elif reducer_output.outcome == "error":
        error = f"reducer failed: {reducer_output.error}"
        store.finalize(run_id, "failed", result.model_dump_json(), error)
    else:
        store.finalize(run_id, "succeeded", result.model_dump_json())
