"""Execution plans: what learners derived about an agent, kept in Redis, read by workers."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, Field

PlanMode = Literal["observe_only", "inject_hints", "schedule"]


def group_id(tool_names: list[str]) -> str:
    """``fanout:`` and the first 12 hex digits of sha256 of the sorted names joined by ``|``."""
    joined = "|".join(sorted(tool_names))
    return "fanout:" + hashlib.sha256(joined.encode()).hexdigest()[:12]


class ParallelGroup(BaseModel):
    """Tools seen running at the same time (a name twice: two calls of it overlapped)."""

    group_id: str
    tool_names: list[str]

    @classmethod
    def of(cls, tool_names: list[str]) -> ParallelGroup:
        names = sorted(tool_names)
        return cls(group_id=group_id(names), tool_names=names)


class ParallelHint(BaseModel):
    """Tool ``tool_name`` may run with the others of group ``group_id``. ``explicit`` hints
    come from the user (``AgentSpec.parallel_groups``) and win over learned ones."""

    tool_name: str
    group_id: str
    explicit: bool = False


class MetadataEnvelope(BaseModel):
    """The plan's metadata: its agent, the last run that changed it, and its hints."""

    run_id: str = ""
    agent_id: str
    parallel_hints: list[ParallelHint] = Field(default_factory=list)
    extensions: dict[str, Any] = Field(default_factory=dict)


class ExecutionPlan(BaseModel):
    """One agent's plan. ``version`` grows with every change; ``records_seen`` counts the run
    records ingested for the agent, whether or not they changed the plan."""

    agent_id: str
    version: int = 0
    records_seen: int = 0
    parallel_groups: list[ParallelGroup] = Field(default_factory=list)
    metadata_template: MetadataEnvelope

    @classmethod
    def empty(cls, agent_id: str, run_id: str = "") -> ExecutionPlan:
        return cls(
            agent_id=agent_id, metadata_template=MetadataEnvelope(run_id=run_id, agent_id=agent_id)
        )
