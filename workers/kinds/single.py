"""Single agent runs: one agent from a prompt, or continuing a context."""

from __future__ import annotations

from celery import Celery

from orchestrator.models import AgentOutput, AgentSpec
from orchestrator.models.requests import AgentRunRequest, RunRequest
from orchestrator.state.results import AgentEnding
from orchestrator.state.store import RunStore
from workers.agent.loop import AgentRun
from workers.coordination.ending import finish_run
from workers.kinds.base import Execution, MemberIdentity, MemberStart


def _request(request: RunRequest) -> AgentRunRequest:
    assert isinstance(request, AgentRunRequest)
    return request


class SingleAgentKind:
    """A chord of one member; its body ends the run with the output and the new context.
    The run fails when the agent does (an error, or a budget that admits no agent)."""

    keeps_messages = True
    keeps_records = True  # the result carries the agent's record

    def spec(self, request: RunRequest, member: str) -> AgentSpec:
        return _request(request).spec

    def identity(self, request: RunRequest, member: str) -> MemberIdentity:
        return MemberIdentity(_request(request).spec.name)

    def start(self, request: RunRequest, member: str, stored_input: str) -> MemberStart:
        single = _request(request)
        return MemberStart(list(single.context), single.prompt)

    def run(
        self, request: RunRequest, member: str, start: MemberStart, execution: Execution
    ) -> AgentRun:
        return execution.run(start)

    def after_members(self, app: Celery, store: RunStore, run_id: str) -> None:
        output = store.stored_output(run_id, "0")
        if output is None:
            return
        # The output, messages and record are kept with the run: the result is built from
        # them when asked (orchestrator/state/results.py).
        ending = AgentEnding().model_dump_json()
        status = store.status(run_id)
        if status and status.cancel_reason:
            finish_run(app, store, run_id, "cancelled", ending, status.cancel_reason)
        elif output.outcome == "ok":
            finish_run(app, store, run_id, "succeeded", ending)
        else:
            error = f"agent {output.outcome}: {output.error}"
            finish_run(app, store, run_id, "failed", ending, error)

    def after_final(self, app: Celery, store: RunStore, run_id: str, final: AgentOutput) -> None:
        raise RuntimeError("a single agent run has no final agent")
