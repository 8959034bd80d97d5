"""What a kind of run tells the shared capped-chord machinery about its members."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from celery import Celery

from orchestrator.models import AgentOutput, AgentSpec, Message
from orchestrator.requests import RunRequest
from orchestrator.run_store import RunStore


@dataclass(frozen=True)
class MemberIdentity:
    """How a member appears in outputs and events: a mapper has its item index, a branch its
    loop id; a final agent and a single agent run have neither."""

    name: str
    index: int | None = None
    loop_id: str | None = None

    def event_fields(self) -> dict[str, Any]:
        return {"name": self.name, "index": self.index, "loop_id": self.loop_id}


@dataclass(frozen=True)
class MemberStart:
    """What a member's agent starts from: a context, and a prompt to add to it (or None to
    continue the context as it is)."""

    context: list[Message]
    prompt: str | None


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

    def after_members(self, app: Celery, store: RunStore, run_id: str) -> None:
        """The chord body: every member has ended. Gate a final agent or end the run.
        Must be safe to call more than once."""
        ...

    def after_final(self, app: Celery, store: RunStore, run_id: str, final: AgentOutput) -> None:
        """The final agent ended with ``final``: end the run. Must be safe to repeat."""
        ...
