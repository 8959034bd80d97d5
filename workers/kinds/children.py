"""Child runs: the runs an agent function's member starts (``ctx.map_reduce`` and the like).

A child belongs to the member's run: its ledger counts in the parent's (and every ancestor's),
so the parent's ``max_tokens``, ``max_cost_usd`` and ``max_agents`` bound the family together;
its deadline is at most the parent's; it runs within the parent member's concurrency-group slot
(it takes no slot of the group itself: the slots its waiting parent holds could be all the
group has); it is cancelled with the parent (``workers/coordination/family.py``).

**No deadlock, whatever ``-c`` and however deep.** A member that waits on its child never
waits for a worker slot to free: while it waits, its own thread drives the child to its end.
It admits the child, claims and runs every member of the child that no execution has claimed
yet (admitted, queued or prefetched: a claim takes those from any holder), runs the child's
chord body when all members ended and no worker has yet, and its final agent. Other workers
with free slots run the child's members too (the child is published as any run is); whoever
claims a member first runs it, and a late message of it finds it done. So a waiting member's
progress depends only on the executions already running its child's members, each of which
either ends (its model and tool calls are time-limited) or waits on its own child under the same
rule, one level deeper; nesting is finite, so by induction on depth every wait ends. A member
whose worker died is published again by the watchdog (a thread of its own, no pool slot) and
becomes claimable. Nothing a waiting member needs sits behind a worker slot.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from orchestrator.errors import InvalidRunError, RunFailedError
from orchestrator.models import TERMINAL_STATES, AgentSpec, Budget, RunStatus
from orchestrator.models.input_limits import check_request_value
from orchestrator.models.items import item_texts
from orchestrator.models.requests import (
    AgentRunRequest,
    BranchesRequest,
    MapReduceRequest,
    RunRequest,
)
from orchestrator.models.results import AgentRunResult, MapReduceResult, ParallelResult
from orchestrator.state.children import RunFamily, child_run_id
from orchestrator.state.events import ChildRunStart
from orchestrator.state.keys import FINAL_MEMBER
from orchestrator.state.results import ended_result
from workers.coordination import advance, canvas, steps
from workers.coordination.family import cancel_children, cancel_run
from workers.execution.cancellation import Cancelled, CancelToken
from workers.execution.liveness import new_token

if TYPE_CHECKING:
    from workers.execution.member import MemberRuntime
    from workers.kinds.base import MemberIdentity

ResultT = TypeVar("ResultT", bound=BaseModel)
RequestT = TypeVar("RequestT", MapReduceRequest, BranchesRequest, AgentRunRequest)
WAIT_MS = 500
"""How long a waiting member blocks on its child's events before it looks again (a stop of
its own execution is seen within this)."""


class ChildRuns:
    """The child runs of one member execution (see the module docstring).

    Parameters:
        runtime: the worker's member runtime.
        run_id, member: the parent member.
        token: its execution's lease token (a child is linked only while it holds the member).
        identity: how the member is named in events.
        cancel: its execution's token.
        guard: raises ``Cancelled`` when the member may make no further call.
    """

    def __init__(
        self,
        runtime: MemberRuntime,
        run_id: str,
        member: str,
        token: str,
        identity: MemberIdentity,
        cancel: CancelToken,
        guard: Callable[[], None],
    ) -> None:
        self._runtime = runtime
        self._run_id = run_id
        self._member = member
        self._token = token
        self._identity = identity
        self._cancel = cancel
        self._guard = guard
        self._family = RunFamily(runtime.store.client)
        self._calls: Counter[str] = Counter()

    def map_reduce(
        self,
        task: str,
        items: Sequence[Any],
        mapper: AgentSpec | dict[str, Any],
        reducer: AgentSpec | dict[str, Any],
        max_concurrent: int = 5,
        budget: Budget | dict[str, Any] | None = None,
        deadline_s: float | None = None,
    ) -> MapReduceResult:
        texts = item_texts(items)
        request = self._validated(
            MapReduceRequest,
            deadline_s,
            task=task,
            mapper=mapper,
            reducer=reducer,
            max_concurrent=max_concurrent,
            budget=budget,
            item_count=len(texts),
        )
        return self._run(request, MapReduceResult, deadline_s, texts)

    def parallel_branches(
        self,
        configs: Sequence[AgentSpec | dict[str, Any]],
        prompt: str | None = None,
        strategy: str = "pick_first",
        judge: AgentSpec | dict[str, Any] | None = None,
        max_concurrent: int | None = None,
        budget: Budget | dict[str, Any] | None = None,
        deadline_s: float | None = None,
    ) -> ParallelResult:
        request = self._validated(
            BranchesRequest,
            deadline_s,
            configs=list(configs),
            prompt=prompt,
            strategy=strategy,
            judge=judge,
            session_id=f"{self._run_id}.{self._member}",
            max_concurrent=max_concurrent or max(1, len(configs)),
            budget=budget,
        )
        return self._run(request, ParallelResult, deadline_s)

    def run_agent(
        self,
        spec: AgentSpec | dict[str, Any],
        prompt: str,
        budget: Budget | dict[str, Any] | None = None,
        deadline_s: float | None = None,
    ) -> AgentRunResult:
        request = self._validated(
            AgentRunRequest,
            deadline_s,
            spec=spec,
            prompt=prompt,
            session_id=f"{self._run_id}.{self._member}",
            max_concurrent=1,
            budget=budget,
        )
        return self._run(request, AgentRunResult, deadline_s)

    def close(self) -> None:
        """The member's function returned: a child of this member that is still running (one
        an earlier execution started and this one never asked for again) is cancelled."""
        cancel_children(
            self._runtime.app,
            self._runtime.store,
            self._run_id,
            "the member that started it ended",
            self._member,
        )

    def _validated(
        self, model: type[RequestT], deadline_s: float | None, **fields: Any
    ) -> RequestT:
        """The child's request: validated as a client's submission is; no deadline past the
        parent's; the agent functions it names served here."""
        left = self._family.deadline_left_s(self._run_id)
        if left is not None:
            if left <= 0:
                raise Cancelled("deadline exceeded")
            deadline_s = left if deadline_s is None else min(deadline_s, left)
        fields["budget"] = fields.get("budget") or Budget()
        fields["deadline_s"] = deadline_s
        check_request_value(fields, "")
        try:
            request: RequestT = model.model_validate(fields)
        except ValidationError as error:
            raise InvalidRunError(str(error)) from None
        specs = [*request.member_specs, request.final_spec]
        wanted = {spec.agent for spec in specs if spec is not None and spec.agent}
        unknown = sorted(wanted - set(self._runtime.functions.names))
        if unknown:
            served = ", ".join(self._runtime.functions.names) or "none"
            raise InvalidRunError(f"agent: unknown agent function {unknown} (served: {served})")
        return request

    def _run(
        self,
        request: RunRequest,
        model: type[ResultT],
        deadline_s: float | None,
        items: list[str] | None = None,
    ) -> ResultT:
        """Start (or adopt) the child for this call, drive it to its end, return its result.
        ``deadline_s`` is the one the call asked for."""
        self._cancel.check()
        self._guard()
        runtime = self._runtime
        store = runtime.store
        # The call is named by what it asked for: the request's deadline is what is left of the
        # parent's, less at each execution, and a redelivered member must find the same child.
        asked = request.model_dump(mode="json", exclude={"deadline_s"})
        digest = hashlib.sha256(json.dumps([asked, deadline_s, items]).encode()).hexdigest()[:16]
        self._calls[digest] += 1
        call_key = f"{digest}.{self._calls[digest]}"
        event = ChildRunStart(
            run_id=self._run_id,
            child_run_id=child_run_id(self._run_id),
            kind=request.kind,
            **self._identity.event_fields(),
        )
        verdict, child_id = self._family.link(
            self._run_id, self._member, self._token, call_key, event
        )
        if verdict in ("cancelled", "lost", "gone"):
            raise Cancelled(child_id or f"the parent member can start no child ({verdict})")
        if not store.exists(child_id):  # linked now, or linked by an execution that died then
            lineage = self._family.lineage(self._run_id, self._member)
            store.create_run(child_id, request, items, lineage=lineage)
        steps.admit(runtime.app, store, child_id)
        status = self._drive(child_id)
        built = ended_result(store, child_id)
        result = model.model_validate(built) if built is not None else None
        if status.state == "failed":
            raise RunFailedError(child_id, status.error, result)
        if result is None:
            raise RunFailedError(child_id, "the child run ended without a result")
        return result

    def _drive(self, child_id: str) -> RunStatus:
        """Run what the child needs until it ends (see the module docstring)."""
        store = self._runtime.store
        after = self._family.last_event_id(child_id)
        gated = False
        while True:
            status = store.status(child_id)
            if status is None:
                raise RunFailedError(child_id, "the child run no longer exists")
            if status.state in TERMINAL_STATES:
                return status
            if self._cancel.cancelled:
                reason = f"its parent was stopped: {self._cancel.reason}"
                cancel_run(self._runtime.app, store, child_id, reason)
                raise Cancelled(self._cancel.reason)
            self._guard()
            if self._run_one(child_id):
                continue
            if not gated and status.finished_members >= status.total and status.in_flight == 0:
                # Every member ended, and no worker ran the chord body yet: run it here.
                gated = True
                advance.after_child_drained(self._runtime.app, store, child_id)
                continue
            after = self._family.wait_for_event(child_id, after, WAIT_MS)

    def _run_one(self, child_id: str) -> bool:
        """Claim and run one member of the child that no execution holds; False if none."""
        from workers.execution.member import execute_member

        runtime = self._runtime
        for member in self._family.unclaimed(child_id):
            token = new_token(runtime.store.client)
            output = execute_member(runtime, child_id, member, token=token)
            if output is None:
                continue  # another execution claimed it first
            if member == FINAL_MEMBER:
                advance.after_final(runtime.app, runtime.store, child_id, output)
            else:
                canvas.count_member(runtime.app, child_id, int(member), output)
            return True
        return False
