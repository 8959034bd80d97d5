"""The ``@tool`` decorator: a typed Python function becomes a tool agents can call.

A tool's name is its function's name; its description is the docstring; its JSON schema is
derived from the signature with pydantic, and the model's arguments are validated against it
before the function runs. Workers load the modules named in ``ORCHESTRATOR_TOOL_MODULES``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model


class ToolArgumentsError(ValueError):
    """The model's arguments do not match the tool's schema."""


_CALL_KEY: ContextVar[str | None] = ContextVar("orchestrator_tool_call_key", default=None)


def idempotency_key() -> str:
    """The key of the tool call running in this context: ``run id/member/call id``.

    It is the same on every execution of one call (the call in flight when its worker died
    runs again on resume, with the same key) and different for every other call, so a tool
    with side effects can use it to make them once (``SET key NX``, an API's idempotency
    header). Raises ``LookupError`` outside a tool call."""
    key = _CALL_KEY.get()
    if key is None:
        raise LookupError("idempotency_key() is only known inside a tool call")
    return key


@contextmanager
def calling(key: str) -> Iterator[None]:
    """``idempotency_key()`` is ``key`` in this block (for the workers that run tools)."""
    reset = _CALL_KEY.set(key)
    try:
        yield
    finally:
        _CALL_KEY.reset(reset)


class ToolInfo(BaseModel):
    """What workers publish about a tool, and what a model is shown."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    remote: bool = False
    max_concurrency: int | None = None
    timeout_s: float | None = None


class McpServerInfo(BaseModel):
    """What a worker publishes about one of its MCP servers: its name, whether it is up, why
    not, and how many tools it serves (never its command, URL or headers)."""

    name: str
    transport: Literal["stdio", "http"]
    up: bool
    error: str = ""
    tools: int = 0


class ToolPolicy(BaseModel):
    """How the tool calls of one model turn run.

    Attributes:
        mode: ``parallel`` (the default), ``sequential``, or ``plan``: calls that form one
            group of the agent's plan run concurrently, everything else one at a time (with
            ``plan_mode="schedule"``; without a plan, ``plan`` is sequential). Every mode
            returns results in the order of the model's calls.
        max_concurrency: the most calls of one turn running at once (``parallel`` only).
        join: ``join_all`` returns every result (errors as error results); ``fail_fast`` stops
            at the first error: queued calls never start, running async and remote calls are
            cancelled, and a running sync function's late result is discarded.
        timeout_s: a deadline for each call that sets none itself (60 s by default); a call
            past it returns a timeout error the model reads.
    """

    model_config = ConfigDict(extra="forbid")

    mode: str = Field(default="parallel", pattern="^(parallel|sequential|plan)$")
    max_concurrency: int | None = Field(default=None, ge=1)
    join: str = Field(default="join_all", pattern="^(join_all|fail_fast)$")
    timeout_s: float = Field(default=60.0, gt=0, allow_inf_nan=False)


@dataclass(frozen=True)
class Tool:
    """A tool: the function, its schema and how it may run.

    Calling a ``Tool`` calls the function, so decorated functions stay usable directly.
    """

    function: Callable[..., Any]
    info: ToolInfo
    arguments: type[BaseModel]

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments for the function, or ``ToolArgumentsError``."""
        try:
            parsed = self.arguments.model_validate(arguments)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in issue['loc']) or 'arguments'}: {issue['msg']}"
                for issue in error.errors()
            )
            raise ToolArgumentsError(f"invalid arguments for {self.name}: {problems}") from None
        return {name: getattr(parsed, name) for name in self.arguments.model_fields}

    def wire_arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Validated ``arguments`` (from ``validate``) as JSON values, for a call that crosses
        the wire: models become objects, sets lists, enums their values; ``validate`` on the
        other side turns them back."""
        dumped: dict[str, Any] = self.arguments.model_validate(arguments).model_dump(mode="json")
        return dumped


def _arguments_model(function: Callable[..., Any], name: str) -> type[BaseModel]:
    hints = get_type_hints(function)
    fields: dict[str, Any] = {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"tool {name}: *args and **kwargs have no schema")
        annotation = hints.get(parameter.name, Any)
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (annotation, default)
    config = ConfigDict(extra="forbid")
    return create_model(f"{name}_arguments", __config__=config, **fields)


@overload
def tool(function: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    remote: bool = False,
    max_concurrency: int | None = None,
    timeout_s: float | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    remote: bool = False,
    max_concurrency: int | None = None,
    timeout_s: float | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make ``function`` a tool (``@tool`` or ``@tool(...)``).

    Parameters:
        name: the tool's name (default: the function's name).
        remote: run each call as a task on the ``tools`` queue instead of in the agent's worker.
        max_concurrency: the most calls of this tool running at once across all workers.
        timeout_s: a deadline per call; past it the call returns a timeout error at once.
    """
    if max_concurrency is not None and max_concurrency < 1:
        raise ValueError("max_concurrency must be at least 1")
    if timeout_s is not None and timeout_s <= 0:
        raise ValueError("timeout_s must be positive")

    def make(target: Callable[..., Any]) -> Tool:
        tool_name = name or target.__name__
        arguments = _arguments_model(target, tool_name)
        info = ToolInfo(
            name=tool_name,
            description=inspect.getdoc(target) or "",
            parameters=arguments.model_json_schema(),
            remote=remote,
            max_concurrency=max_concurrency,
            timeout_s=timeout_s,
        )
        return Tool(function=target, info=info, arguments=arguments)

    return make(function) if function is not None else make
