"""What a kind of run tells the shared capped-chord machinery about its members."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from celery import Celery

from orchestrator.models import AgentCheckpoint, AgentOutput, AgentSpec, Message
from orchestrator.models.requests import RunRequest
from orchestrator.state.connection import wait_out_refusals
from orchestrator.state.store import RunStore
from workers.agent.loop import AgentEvents, AgentRun
from workers.execution.cancellation import CancelToken

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MemberIdentity:
    """How a member appears in outputs and events: a mapper has its item index, a branch its
    loop id; a final agent and a single agent run have neither. A partial reducer of a tree
    reduce (an agent run inside the final member) has its part, ``level.chunk``."""

    name: str
    index: int | None = None
    loop_id: str | None = None
    part: str | None = None

    def event_fields(self) -> dict[str, Any]:
        return {"name": self.name, "index": self.index, "loop_id": self.loop_id, "part": self.part}


@dataclass(frozen=True)
class MemberStart:
    """What a member's agent starts from: a context, and a prompt to add to it (or None to
    continue the context as it is)."""

    context: list[Message]
    prompt: str | None
    item: str | None = None
    """A mapper's item (what ``AgentContext.item`` gives an agent function)."""


class AgentCall(Protocol):
    """Runs the member's agent (its spec) from ``start`` inside a member execution, under
    everything the execution holds: its cancel token and time limit, its lease guard, its
    budget, tools and providers."""

    def __call__(
        self,
        start: MemberStart,
        *,
        name: str,
        events: AgentEvents,
        resume: AgentCheckpoint | None = None,
        checkpoint: Callable[[AgentCheckpoint], object] | None = None,
    ) -> AgentRun: ...


@dataclass(frozen=True)
class Execution:
    """A member execution that holds the member's lease (``token``), as its kind runs agents
    in it: ``run`` is the member's own agent run; a kind may make more with ``agent`` (a
    map-reduce's partial reducers).

    Parameters:
        app: the Celery app.
        store: the run store.
        run_id: the run.
        member: the member.
        token: the execution's lease token.
        worker: ``host:pid`` of the worker process (for start events).
        identity: how the member is named.
        events: where the member's own agent run reports.
        resume: the checkpoint an earlier execution of the member left, if any.
        agent: runs an agent in this execution.
        cancel: the execution's stop: a cancel, its time limit, a lost lease (for work that
            is no agent run, a reducer function).
    """

    app: Celery
    store: RunStore
    run_id: str
    member: str
    token: str
    worker: str
    identity: MemberIdentity
    events: AgentEvents
    resume: AgentCheckpoint | None
    agent: AgentCall
    cancel: CancelToken

    def waiting(self, refusal: str) -> None:
        """Say that the member waits for a full Redis to have room, Redis's words ``refusal``."""
        log.warning(
            "run %s member %s: Redis refuses writes (%s); the member waits until it has room",
            self.run_id,
            self.member,
            refusal,
        )

    def run(self, start: MemberStart) -> AgentRun:
        """The member's own agent run from ``start``: resumed from its checkpoint, if any, and
        checkpointed after each tool result."""

        def checkpoint(state: AgentCheckpoint) -> bool:
            return wait_out_refusals(
                lambda: self.store.save_checkpoint(self.run_id, self.member, self.token, state),
                self.waiting,
            )

        return self.agent(
            start,
            name=self.identity.name,
            events=self.events,
            resume=self.resume,
            checkpoint=checkpoint,
        )


class RunKind(Protocol):
    """One kind of run (map-reduce, branches, single agent) on the shared machinery.

    Members are item indices as strings, or ``final`` for the agent that runs after them.
    """

    keeps_messages: bool
    """Whether the messages a member adds are stored (branches and single runs need them)."""

    keeps_records: bool
    """Whether a member's record is stored with the run (a single run's result carries it);
    every record goes to the learners either way."""

    def spec(self, request: RunRequest, member: str) -> AgentSpec:
        """The agent that runs member ``member``."""
        ...

    def identity(self, request: RunRequest, member: str) -> MemberIdentity:
        """How member ``member`` is named in outputs and events."""
        ...

    def start(self, request: RunRequest, member: str, stored_input: str) -> MemberStart:
        """What member ``member`` starts from; ``stored_input`` is its item, or the final
        agent's prompt."""
        ...

    def run(
        self, request: RunRequest, member: str, start: MemberStart, execution: Execution
    ) -> AgentRun:
        """Run member ``member`` from ``start`` in ``execution``: its own agent run, or several
        agent runs whose last is its own (a map-reduce's tree reduce)."""
        ...

    def after_members(self, app: Celery, store: RunStore, run_id: str) -> None:
        """The chord body: every member has ended. Gate a final agent or end the run
        (``workers/coordination/ending.py``). Called from ``workers/coordination/advance.py``
        only; must be safe to call more than once."""
        ...

    def after_final(self, app: Celery, store: RunStore, run_id: str, final: AgentOutput) -> None:
        """The final agent ended with ``final``: end the run. Called from
        ``workers/coordination/advance.py`` only; must be safe to repeat."""
        ...
