"""A run's result, put together from what the run keeps.

A run stores each member's output once (its outputs hash), the messages that branches and
single agents added, and a single agent's record. Its last step stores only an *ending*: what
its result holds that is kept nowhere else (a map-reduce's reducer output when the reducer did
not run, a branches run's selection). The result the client gets is built from these when
asked, the outputs read in pages and parsed one by one, so that a 100,000-item run is never one
JSON document, neither in Redis nor in the client.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import reduce

from pydantic import BaseModel, Field

from orchestrator.models import AgentOutput, Usage
from orchestrator.models.requests import (
    AgentRunRequest,
    BranchesRequest,
    MapReduceRequest,
    RunRequest,
)
from orchestrator.models.results import (
    AgentRunResult,
    BranchOutcome,
    MapReduceResult,
    ParallelResult,
)
from orchestrator.state.keys import FINAL_MEMBER
from orchestrator.state.store import RunStore

SUMMARY_CHARS = 300


def summaries(outputs: Iterable[AgentOutput]) -> list[str]:
    """One line per successful mapper: ``- [name] answer``, the answer cut to 300 characters;
    a typed mapper's (one with ``data``) is its data's compact JSON, uncut (a record cut in
    half would be no record)."""
    return [summary(o) for o in outputs if o.succeeded()]


def summary(output: AgentOutput) -> str:
    """A successful mapper's line (see ``summaries``)."""
    answer = output.answer if output.data is not None else output.answer[:SUMMARY_CHARS]
    return f"- [{output.name}] {answer}"


class MapReduceEnding(BaseModel):
    """How a map-reduce ended, beyond its outputs. ``reducer_output``: the reducer's output
    when it is not the run's stored ``final`` output (the budget or a cancel kept the reducer
    from running). ``reduced_answer``: None when it follows from the reducer's output (see
    ``reduced_answer``); runs ended by earlier versions kept it here."""

    reducer_output: AgentOutput | None = None
    reduced_answer: str | None = None


def reduced_answer(reducer: AgentOutput | None, outputs: list[AgentOutput]) -> str:
    """A map-reduce's answer: the reducer's, the unreduced summaries of the map outputs when
    the reducer did not run (budget, cancel; a tree reduce stopped part way answers with what
    it reduced), and '' when it failed."""
    if reducer is None or reducer.outcome == "error":
        return ""
    if reducer.outcome == "ok":
        return reducer.answer
    return reducer.answer or "\n".join(summaries(outputs))


class BranchesEnding(BaseModel):
    """How a branches run ended: the outcome its strategy selected (None: none), and what the
    evaluation (a judge) used."""

    selected_index: int | None = None
    evaluation_usage: Usage = Field(default_factory=Usage)


class AgentEnding(BaseModel):
    """A single agent run's result is all kept elsewhere (its output, messages and record)."""


def map_reduce_result(
    store: RunStore, run_id: str, request: MapReduceRequest, ending: MapReduceEnding
) -> MapReduceResult:
    """The map outputs in item order, read in pages, and the reducer's output and answer."""
    outputs = store.outputs(run_id)
    reducer = ending.reducer_output or store.stored_output(run_id, FINAL_MEMBER)
    reduced = ending.reduced_answer
    return MapReduceResult(
        task=request.task,
        map_outputs=outputs,
        reduced_answer=reduced_answer(reducer, outputs) if reduced is None else reduced,
        reduced_data=reducer.data if reducer is not None and reducer.succeeded() else None,
        reducer_output=reducer,
    )


def branch_outcomes(store: RunStore, run_id: str, request: BranchesRequest) -> list[BranchOutcome]:
    """The ended branches in config order, each with the messages it added."""
    return [
        BranchOutcome(
            config_index=index,
            loop_id=request.loop_ids[index],
            output=output,
            new_messages=store.messages(run_id, str(index)),
            original_context_len=len(request.base_context),
        )
        for index, output in store.indexed_outputs(run_id)
    ]


def parallel_result(
    request: BranchesRequest,
    outcomes: list[BranchOutcome],
    selected: int | None,
    evaluation_usage: Usage,
) -> ParallelResult:
    """Every outcome and the selected one (``selected``: its position in ``outcomes``), the
    context that continues the session, and the usage of all branches and the evaluation."""
    chosen = None if selected is None else outcomes[selected]
    total = reduce(lambda acc, o: acc + o.usage, outcomes, Usage()) + evaluation_usage
    return ParallelResult(
        session_id=request.session_id,
        outcomes=outcomes,
        selected_index=selected,
        selected_loop_id=chosen.loop_id if chosen else None,
        selected_messages=chosen.new_messages if chosen else [],
        selected_context=[*request.base_context, *chosen.new_messages] if chosen else [],
        evaluation_usage=evaluation_usage,
        total_usage=total,
    )


def agent_result(store: RunStore, run_id: str, request: AgentRunRequest) -> AgentRunResult | None:
    """The agent's output, the context after it and its record; None before it ended."""
    output = store.stored_output(run_id, "0")
    if output is None:
        return None
    return AgentRunResult(
        output=output,
        context=[*request.context, *store.messages(run_id, "0")],
        session_id=request.session_id,
        record=store.record(run_id, "0"),
    )


def ended_result(store: RunStore, run_id: str) -> BaseModel | None:
    """The result of an ended run, built from what it keeps; None when it ended without one
    (or has not ended)."""
    raw = store.ending_json(run_id)
    if not raw:
        return None
    request: RunRequest = store.request(run_id)
    if isinstance(request, MapReduceRequest):
        return map_reduce_result(store, run_id, request, MapReduceEnding.model_validate_json(raw))
    if isinstance(request, BranchesRequest):
        ending = BranchesEnding.model_validate_json(raw)
        outcomes = branch_outcomes(store, run_id, request)
        return parallel_result(request, outcomes, ending.selected_index, ending.evaluation_usage)
    return agent_result(store, run_id, request)
