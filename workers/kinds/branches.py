"""Parallel branches: N agent configurations from one base context, then a strategy selects
one. The evaluation is the chord body; the ``llm_judge`` strategy runs its judge as the run's
budget-gated final agent."""

from __future__ import annotations

from celery import Celery

from orchestrator.models import AgentOutput, AgentSpec, RunState, Usage
from orchestrator.models.requests import BranchesRequest, RunRequest
from orchestrator.models.results import BranchOutcome
from orchestrator.state.events import ParallelLoopEnd
from orchestrator.state.keys import FINAL_MEMBER
from orchestrator.state.results import BranchesEnding, branch_outcomes
from orchestrator.state.store import RunStore
from workers import spans
from workers.agent.loop import AgentRun
from workers.coordination.ending import finish_run
from workers.coordination.publishing import publish
from workers.identity import node_name
from workers.kinds.base import Execution, MemberIdentity, MemberStart
from workers.kinds.evaluation import (
    StrategyError,
    checked_choice,
    judge_choice,
    judge_prompt,
    load_strategy,
)
from workers.kinds.strategy_registry import registered_strategies


def _request(request: RunRequest) -> BranchesRequest:
    assert isinstance(request, BranchesRequest)
    return request


def task_text(request: BranchesRequest) -> str:
    """What the branches were asked: the prompt, or the last user message they continued."""
    if request.prompt is not None:
        return request.prompt
    users = [m.content for m in request.base_context if m.role == "user"]
    return users[-1] if users else request.base_context[-1].content


class BranchesKind:
    """Branch ``i`` runs ``configs[i]`` on its own copy of the base context, as loop
    ``{session_id}.{config_segment}.{i + 1}``."""

    keeps_messages = True
    keeps_records = False

    def spec(self, request: RunRequest, member: str) -> AgentSpec:
        branches = _request(request)
        if member == FINAL_MEMBER:
            assert branches.judge is not None
            return branches.judge
        return branches.configs[int(member)]

    def identity(self, request: RunRequest, member: str) -> MemberIdentity:
        branches = _request(request)
        if member == FINAL_MEMBER:
            return MemberIdentity(self.spec(request, member).name)
        index = int(member)
        return MemberIdentity(branches.configs[index].name, loop_id=branches.loop_ids[index])

    def start(self, request: RunRequest, member: str, stored_input: str) -> MemberStart:
        if member == FINAL_MEMBER:
            return MemberStart([], stored_input)
        branches = _request(request)
        return MemberStart(list(branches.base_context), branches.prompt)

    def run(
        self, request: RunRequest, member: str, start: MemberStart, execution: Execution
    ) -> AgentRun:
        return execution.run(start)

    def after_members(self, app: Celery, store: RunStore, run_id: str) -> None:
        branches = _request(store.request(run_id))
        outcomes = branch_outcomes(store, run_id, branches)
        status = store.status(run_id)
        if status and status.cancel_reason:
            self._finish(
                app, store, run_id, outcomes, None, Usage(), "cancelled", status.cancel_reason
            )
            return
        if not any(o.output.succeeded() for o in outcomes):
            errors = "; ".join(f"{o.loop_id}: {o.output.error}" for o in outcomes)
            self._finish(
                app,
                store,
                run_id,
                outcomes,
                None,
                Usage(),
                "failed",
                f"no branch succeeded: {errors}",
            )
            return
        strategy = branches.strategy
        if strategy == "llm_judge":
            if sum(o.output.succeeded() for o in outcomes) > 1:
                judge = self.spec(branches, FINAL_MEMBER)
                prompt = judge_prompt(
                    task_text(branches), outcomes, judge.instructions, judge.model.context_window
                )
                verdict, reason = store.gate_final(run_id, node_name(), prompt)
                if verdict == "gone":
                    return
                if verdict == "admitted":
                    publish(app, store, run_id, [FINAL_MEMBER])
                    return
                if verdict == "cancelled":
                    self._finish(app, store, run_id, outcomes, None, Usage(), "cancelled", reason)
                    return
                spans.budget_denied(reason, FINAL_MEMBER)
            # One success leaves nothing to judge; a budget that denies the judge leaves the
            # first successful branch.
            strategy = "pick_first"
        try:
            choice = load_strategy(strategy, registered_strategies(store.settings))(
                branches.prompt, outcomes
            )
            selected = checked_choice(strategy, choice, outcomes)
        except StrategyError as error:
            self._finish(app, store, run_id, outcomes, None, Usage(), "failed", str(error))
            return
        except Exception as error:  # a user's strategy raised: the run fails, clearly
            message = f"strategy {strategy!r} raised {type(error).__name__}: {error}"
            self._finish(app, store, run_id, outcomes, None, Usage(), "failed", message)
            return
        self._finish(app, store, run_id, outcomes, selected, Usage(), "succeeded")

    def after_final(self, app: Celery, store: RunStore, run_id: str, final: AgentOutput) -> None:
        """The judge ended: select the branch it named."""
        branches = _request(store.request(run_id))
        outcomes = branch_outcomes(store, run_id, branches)
        status = store.status(run_id)
        if status and status.cancel_reason:
            self._finish(
                app, store, run_id, outcomes, None, final.tokens, "cancelled", status.cancel_reason
            )
            return
        if not final.succeeded():
            error = f"the judge {final.outcome}: {final.error}"
            self._finish(app, store, run_id, outcomes, None, final.tokens, "failed", error)
            return
        try:
            selected = checked_choice("llm_judge", judge_choice(final.answer, outcomes), outcomes)
        except StrategyError as error:
            self._finish(app, store, run_id, outcomes, None, final.tokens, "failed", str(error))
            return
        self._finish(app, store, run_id, outcomes, selected, final.tokens, "succeeded")

    @staticmethod
    def _finish(
        app: Celery,
        store: RunStore,
        run_id: str,
        outcomes: list[BranchOutcome],
        selected: int | None,
        evaluation_usage: Usage,
        state: RunState,
        error: str = "",
    ) -> None:
        branches = _request(store.request(run_id))
        end = ParallelLoopEnd(
            run_id=run_id,
            session_id=branches.session_id,
            selected_loop_id=None if selected is None else outcomes[selected].loop_id,
            selected_config_index=selected,
            evaluation_usage=evaluation_usage,
        )
        # The outcomes are kept in the run's outputs and messages: the result is built from
        # them when asked (orchestrator/state/results.py), with the selection kept here.
        ending = BranchesEnding(selected_index=selected, evaluation_usage=evaluation_usage)
        finish_run(app, store, run_id, state, ending.model_dump_json(), error, events=(end,))
