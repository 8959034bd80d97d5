"""Validated submissions, one model per kind of run, stored with the run as JSON.

Everything a worker needs to run a member is here, so a submission that validates is one the
workers can run: bad input fails at submit time, before anything is dispatched.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from orchestrator.models import AgentSpec, Budget, Message
from orchestrator.reducers import REDUCER_NAME
from orchestrator.state.keys import GROUP_NAME
from orchestrator.strategies import BUILTIN_STRATEGIES, STRATEGY_NAME


def model_slug(model: str) -> str:
    """A model name fit for a loop id: lower case, runs of other characters (dots included,
    since dots separate a loop id's parts) turned into one ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-") or "model"


def config_segment(spec: AgentSpec) -> str:
    """``config_id``, else ``{provider}.{model slug}``, plus ``.{thinking}`` when set."""
    if spec.config_id:
        return spec.config_id
    segment = f"{spec.model.provider}.{model_slug(spec.model.model)}"
    return f"{segment}.{spec.thinking}" if spec.thinking else segment


def branch_loop_ids(session_id: str, configs: list[AgentSpec]) -> list[str]:
    """``{session_id}.{config_segment}.{N}`` with N counting from 1 in config order."""
    return [f"{session_id}.{config_segment(c)}.{n}" for n, c in enumerate(configs, start=1)]


def check_continuable(prompt: str | None, context: list[Message], what: str) -> None:
    """Without a prompt, an agent continues from ``context``: it must hold a message that the
    agent answers, so it must be non-empty and not end on an assistant message."""
    if prompt is not None:
        return
    if not context:
        raise ValueError(f"with no prompt, {what} must not be empty (the agent continues from it)")
    if context[-1].role == "assistant":
        raise ValueError(
            f"with no prompt, {what} must not end on an assistant message (nothing to answer)"
        )


class _RunRequest(BaseModel):
    """What every kind of run has; each kind names its agents with ``member_specs`` (the specs
    its members run) and ``final_spec`` (the agent after them, if any)."""

    model_config = ConfigDict(extra="forbid")

    budget: Budget = Field(default_factory=Budget)
    deadline_s: float | None = Field(default=None, gt=0)
    max_concurrent: int = Field(default=5, ge=1)
    group: str | None = None
    """The concurrency group whose limit the run's members share with every other run that
    names it (the workers declare groups in ``ORCHESTRATOR_GROUP_LIMITS``)."""

    @field_validator("group")
    @classmethod
    def _group_name(cls, group: str | None) -> str | None:
        if group is not None and not GROUP_NAME.match(group):
            raise ValueError(
                f"{group!r} is not a group name: 1 to 64 letters, digits, '_', '.' or '-', "
                "starting with a letter or a digit"
            )
        return group


class MapReduceRequest(_RunRequest):
    """A map-reduce: one mapper per item, then the reducer: an agent (``reducer``) or a
    function registered on the workers with ``@reducer`` (``reducer_function``, its name)."""

    kind: Literal["map_reduce"] = "map_reduce"
    task: str
    mapper: AgentSpec
    reducer: AgentSpec | None = None
    reducer_function: str | None = None
    item_count: int = Field(ge=1)

    @property
    def member_count(self) -> int:
        return self.item_count

    @property
    def member_specs(self) -> list[AgentSpec]:
        return [self.mapper]

    @property
    def final_spec(self) -> AgentSpec | None:
        return self.reducer

    @property
    def reducer_name(self) -> str:
        """The name of the reducer's output: the agent's, or the reducer function's."""
        return self.reducer.name if self.reducer is not None else str(self.reducer_function)

    @model_validator(mode="after")
    def _task_given(self) -> MapReduceRequest:
        if not self.task.strip():
            raise ValueError("task must not be empty")
        if (self.reducer is None) == (self.reducer_function is None):
            raise ValueError("a map-reduce needs a reducer: an AgentSpec or a @reducer's name")
        if self.reducer_function is not None and not REDUCER_NAME.match(self.reducer_function):
            raise ValueError(
                f"reducer {self.reducer_function!r} is not a reducer name: name a function "
                "registered on the workers with @reducer; import paths are refused"
            )
        return self


class BranchesRequest(_RunRequest):
    """Parallel branches: N agent configurations from one base context, then a strategy."""

    kind: Literal["branches"] = "branches"
    configs: list[AgentSpec] = Field(min_length=1)
    prompt: str | None = None
    base_context: list[Message] = Field(default_factory=list)
    strategy: str = "pick_first"
    judge: AgentSpec | None = None
    session_id: str = Field(min_length=1, pattern=r"^[^\s]+$")

    @property
    def member_count(self) -> int:
        return len(self.configs)

    @property
    def member_specs(self) -> list[AgentSpec]:
        return list(self.configs)

    @property
    def final_spec(self) -> AgentSpec | None:
        return self.judge if self.strategy == "llm_judge" else None

    @property
    def loop_ids(self) -> list[str]:
        return branch_loop_ids(self.session_id, self.configs)

    @model_validator(mode="after")
    def _coherent(self) -> BranchesRequest:
        check_continuable(self.prompt, self.base_context, "base_context")
        if self.strategy not in BUILTIN_STRATEGIES and not STRATEGY_NAME.match(self.strategy):
            raise ValueError(
                f"strategy {self.strategy!r} is not a strategy name: name a built-in "
                f"({', '.join(BUILTIN_STRATEGIES)}) or a strategy registered on the workers "
                "with @strategy; import paths are refused"
            )
        if self.strategy == "transparent" and len(self.configs) != 1:
            raise ValueError(
                f"strategy 'transparent' takes exactly one config, got {len(self.configs)}"
            )
        if self.strategy == "llm_judge" and self.judge is None:
            raise ValueError("strategy 'llm_judge' needs a judge AgentSpec")
        return self


class AgentRunRequest(_RunRequest):
    """One agent run, from a prompt or continuing a context."""

    kind: Literal["agent"] = "agent"
    spec: AgentSpec
    prompt: str | None = None
    context: list[Message] = Field(default_factory=list)
    session_id: str = Field(min_length=1)

    @property
    def member_count(self) -> int:
        return 1

    @property
    def member_specs(self) -> list[AgentSpec]:
        return [self.spec]

    @property
    def final_spec(self) -> AgentSpec | None:
        return None

    @model_validator(mode="after")
    def _continuable(self) -> AgentRunRequest:
        check_continuable(self.prompt, self.context, "context")
        return self


RunRequest = Annotated[
    MapReduceRequest | BranchesRequest | AgentRunRequest, Field(discriminator="kind")
]
RUN_REQUEST: TypeAdapter[RunRequest] = TypeAdapter(RunRequest)
