"""Map-reduce runs: a mapper per item, then a budget-gated reducer over their summaries
(a tree of partial reducers when they do not fit its window: ``workers/kinds/reduce_tree.py``),
or a reducer function registered on the workers (``workers/kinds/reducer_functions.py``)."""

from __future__ import annotations

from celery import Celery

from orchestrator.models import AgentOutput, AgentSpec, Outcome
from orchestrator.models.requests import MapReduceRequest, RunRequest
from orchestrator.state.keys import FINAL_MEMBER
from orchestrator.state.results import MapReduceEnding
from orchestrator.state.store import RunStore
from workers import spans
from workers.agent.loop import AgentRun
from workers.coordination.ending import finish_run
from workers.coordination.publishing import publish
from workers.identity import node_name
from workers.kinds import reduce_tree
from workers.kinds.base import Execution, MemberIdentity, MemberStart
from workers.kinds.reducer_functions import MapOutputs, function_spec, reduce_with_function


def _request(request: RunRequest) -> MapReduceRequest:
    assert isinstance(request, MapReduceRequest)
    return request


class MapReduceKind:
    """Mapper ``i`` is ``{mapper.name}_{i}`` on ``"{task}\\n\\nProcess this item: {item}"``."""

    keeps_messages = False
    keeps_records = False

    def spec(self, request: RunRequest, member: str) -> AgentSpec:
        mr = _request(request)
        if member != FINAL_MEMBER:
            return mr.mapper
        return mr.reducer if mr.reducer is not None else function_spec(mr.reducer_name)

    def identity(self, request: RunRequest, member: str) -> MemberIdentity:
        mr = _request(request)
        if member == FINAL_MEMBER:
            return MemberIdentity(mr.reducer_name)
        return MemberIdentity(f"{mr.mapper.name}_{member}", index=int(member))

    def start(self, request: RunRequest, member: str, stored_input: str) -> MemberStart:
        if member == FINAL_MEMBER:
            return MemberStart([], None)  # the reducer builds its prompts: see ``run``
        prompt = f"{_request(request).task}\n\nProcess this item: {stored_input}"
        return MemberStart([], prompt, item=stored_input)

    def run(
        self, request: RunRequest, member: str, start: MemberStart, execution: Execution
    ) -> AgentRun:
        """A mapper's agent run, or the reduce over the stored outputs (a tree of partial
        reducers when the summaries do not fit the reducer's window)."""
        if member != FINAL_MEMBER:
            return execution.run(start)
        mr = _request(request)
        if mr.reducer is None:
            pages = MapOutputs(execution.store, execution.run_id, mr.item_count)
            return reduce_with_function(execution, mr.reducer_name, mr.task, pages)
        outputs = execution.store.outputs(execution.run_id)
        return reduce_tree.reduce(execution, mr.reducer, mr.task, outputs, mr.max_concurrent)

    def after_members(self, app: Celery, store: RunStore, run_id: str) -> None:
        """Run the reducer if the budget admits it, else end with the unreduced summaries (a
        reducer function is no agent of the budget: only a cancel keeps it from running)."""
        mr = _request(store.request(run_id))
        verdict, reason = store.gate_final(run_id, node_name(), "", agent=mr.reducer is not None)
        if verdict == "gone":
            return
        if verdict == "admitted":
            publish(app, store, run_id, [FINAL_MEMBER])
            return
        outcome: Outcome = "skipped" if verdict == "denied" else "cancelled"
        if verdict == "denied":
            spans.budget_denied(reason, FINAL_MEMBER)
        final = AgentOutput.not_run(mr.reducer_name, outcome, reason)
        self._end(app, store, run_id, final, final_stored=False)

    def after_final(self, app: Celery, store: RunStore, run_id: str, final: AgentOutput) -> None:
        """End the run. A reducer that did not run (budget, cancel) leaves the unreduced
        summaries as the answer; a reducer that failed fails the run."""
        self._end(app, store, run_id, final, final_stored=True)

    def _end(
        self, app: Celery, store: RunStore, run_id: str, final: AgentOutput, final_stored: bool
    ) -> None:
        status = store.status(run_id)
        cancel = status.cancel_reason if status else None
        # The map outputs and a reducer that ran are kept once, in the run's outputs: the
        # result is built from them when asked (orchestrator/state/results.py), the answer too.
        ending = MapReduceEnding(reducer_output=None if final_stored else final)
        result = ending.model_dump_json(exclude_none=True)
        if cancel:
            finish_run(app, store, run_id, "cancelled", result, cancel)
        elif final.outcome == "error":
            finish_run(app, store, run_id, "failed", result, f"reducer failed: {final.error}")
        else:
            finish_run(app, store, run_id, "succeeded", result)
