"""Reducer functions that workers serve: a map-reduce names one, it never sends code.

A reducer function is ``(task, outputs) -> JSON value``: the run's task and every mapper's
``AgentOutput`` in item order (failed and skipped ones included; a typed mapper's parsed
answer is ``output.data``). It runs on a worker as the run's final step, with no model call,
and what it returns is the run's ``MapReduceResult.reduced_data``. Functions decorated with
``@reducer`` in the modules a worker lists in ``ORCHESTRATOR_MODULES`` are registered under
their name; workers publish the names they serve, and a run naming any other is refused at
submit. Nothing a client submits is ever imported.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, overload

from orchestrator.models import AgentOutput

ReducerFunction = Callable[[str, Sequence[AgentOutput]], Any]

DEFAULT_TIMEOUT_S = 900.0
"""A reducer function's time limit unless its registration says otherwise (a member's)."""

REDUCER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
"""What a registered reducer may be called: a plain name, never a path."""


@dataclass(frozen=True)
class Reducer:
    """A registered reducer function; calling it calls the function. ``timeout_s``: its time
    limit as the run's final step."""

    name: str
    function: ReducerFunction
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __call__(self, task: str, outputs: Sequence[AgentOutput]) -> Any:
        return self.function(task, outputs)


@overload
def reducer(
    function: ReducerFunction, *, name: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Reducer: ...


@overload
def reducer(
    function: None = None, *, name: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Callable[[ReducerFunction], Reducer]: ...


def reducer(
    function: ReducerFunction | None = None,
    *,
    name: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Reducer | Callable[[ReducerFunction], Reducer]:
    """Register ``function`` as a reducer named ``name`` (default: the function's name).

    Used bare (``@reducer``) or with options (``@reducer(name="totals", timeout_s=60)``); the
    module must be listed in the workers' ``ORCHESTRATOR_MODULES``. ``timeout_s`` is its time
    limit (900 s by default): past it the run fails, ``timed out after N s``. The function
    gets the task and a sequence of every map output in item order, read from Redis a page at
    a time as it goes through them, and returns a JSON value (a pydantic model is dumped to
    one); what it raises fails the run, the map outputs kept.
    """

    def register(target: ReducerFunction) -> Reducer:
        chosen = name or target.__name__
        if not REDUCER_NAME.match(chosen):
            raise ValueError(f"reducer name {chosen!r} must match {REDUCER_NAME.pattern}")
        if not 0 < timeout_s < math.inf:
            raise ValueError(f"reducer {chosen!r}: timeout_s must be a positive number of seconds")
        return Reducer(chosen, target, float(timeout_s))

    return register(function) if function is not None else register
