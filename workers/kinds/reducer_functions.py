"""Reducer functions: the ones a worker serves, and one run as a map-reduce's final step.

A run names a function (``MapReduceRequest.reducer_function``); it is looked up in this
worker's registry, built from the modules its operator lists, and nothing the run names is
ever imported. The function runs inside the final member's execution, under its lease and
time limit (a member's), and its own ``timeout_s`` within it: in a thread of its own, which
the execution waits for until it returns, its time is up, or the member is stopped (a cancel,
the member's time limit, a lost lease). Python cannot stop a thread, so a function still
running then is left to finish in the background, its result dropped.
"""

from __future__ import annotations

import contextvars
import json
import threading
import time
from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any, overload

from pydantic import BaseModel

from orchestrator.config.settings import Settings
from orchestrator.errors import InvalidRunError
from orchestrator.models import AgentOutput, AgentSpec, RunRecord, utcnow
from orchestrator.models.input_limits import check_request_value
from orchestrator.models.schemas import compact
from orchestrator.reducers import Reducer
from orchestrator.state.store import OUTPUT_PAGE, RunStore
from workers.agent.loop import AgentRun
from workers.kinds.base import Execution
from workers.module_scan import collect_named, served_modules


class ReducerRegistry:
    """Registered reducer functions by name.

    Parameters:
        reducers: the reducer functions this worker serves.
    """

    def __init__(self, reducers: dict[str, Reducer]) -> None:
        self.reducers = reducers

    @classmethod
    def from_modules(cls, module_names: list[str]) -> ReducerRegistry:
        """Every ``Reducer`` defined at the top level of the named modules."""
        return cls(collect_named(module_names, Reducer, "reducers"))

    def get(self, name: str) -> Reducer | None:
        return self.reducers.get(name)

    @property
    def names(self) -> list[str]:
        return sorted(self.reducers)


def registered_reducers(settings: Settings) -> ReducerRegistry:
    """This worker's registry, from its ``ORCHESTRATOR_MODULES`` (checked at start; built once
    per list of modules)."""
    return _registry(tuple(served_modules(settings, [])))


@cache
def _registry(module_names: tuple[str, ...]) -> ReducerRegistry:
    return ReducerRegistry.from_modules(list(module_names))


def function_spec(name: str) -> AgentSpec:
    """What the final member's execution is held to for a reducer function: its name, and a
    member's time limit (no model is called; the function's own ``timeout_s`` applies within
    it)."""
    return AgentSpec(name=name)


class MapOutputs(Sequence[AgentOutput]):
    """Every map output of a run in item order, read from Redis ``page_size`` at a time as it
    is gone through (the last page read is kept), so that a reducer over a run of any size
    never holds them all.

    Parameters:
        store: the run store.
        run_id: the run.
        total: how many mappers the run had (each has an output once they all ended).
        page_size: outputs per read.
    """

    def __init__(self, store: RunStore, run_id: str, total: int, page_size: int = OUTPUT_PAGE):
        self._store = store
        self._run_id = run_id
        self._total = total
        self._page_size = page_size
        self._page: tuple[int, list[AgentOutput]] = (-1, [])

    def __len__(self) -> int:
        return self._total

    @overload
    def __getitem__(self, index: int) -> AgentOutput: ...

    @overload
    def __getitem__(self, index: slice) -> list[AgentOutput]: ...

    def __getitem__(self, index: int | slice) -> AgentOutput | list[AgentOutput]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._total))]
        if index < 0:
            index += self._total
        if not 0 <= index < self._total:
            raise IndexError("map output index out of range")
        first = index - index % self._page_size
        if self._page[0] != first:
            stop = min(first + self._page_size, self._total)
            page = self._store.indexed_outputs(self._run_id, first, stop, self._page_size)
            self._page = (first, [output for _, output in page])
        return self._page[1][index - first]

    def __iter__(self) -> Iterator[AgentOutput]:
        for _, output in self._store.indexed_outputs(self._run_id, 0, self._total, self._page_size):
            yield output


def reduce_with_function(
    execution: Execution, name: str, task: str, outputs: Sequence[AgentOutput]
) -> AgentRun:
    """Run the reducer function ``name`` over ``outputs`` in ``execution``: its output has
    the returned value as ``data`` and its compact JSON as ``answer``; one that raises, returns
    no JSON value or is not registered here ends ``error`` saying so; a stop of the execution
    ends it with the stop's outcome."""
    started, clock = utcnow(), time.perf_counter()

    def ended(**fields: Any) -> AgentRun:
        now = utcnow()
        output = AgentOutput(
            name=name,
            started_at=started,
            ended_at=now,
            duration_ms=(time.perf_counter() - clock) * 1000,
            **fields,
        )
        record = RunRecord(
            run_id=execution.run_id,
            agent_name=name,
            agent_id=name,
            started_at=started,
            ended_at=now,
            outcome=output.outcome,
        )
        return AgentRun(output, [], [], record)

    registry = registered_reducers(execution.store.settings)
    function = registry.get(name)
    if function is None:
        served = ", ".join(registry.names) or "none"
        return ended(outcome="error", error=f"reducer {name!r} is not registered here ({served})")
    done = threading.Event()
    box: dict[str, Any] = {}

    def call() -> None:
        try:
            box["value"] = function(task, outputs)
        except BaseException as error:  # whatever the user's function raises fails the run
            box["error"] = error
        finally:
            done.set()

    worker = threading.Thread(
        target=contextvars.copy_context().run, args=(call,), name=f"reducer {name}", daemon=True
    )
    cancel = execution.cancel
    forget = cancel.on_cancel(done.set)
    worker.start()
    in_time = done.wait(min(function.timeout_s, function_spec(name).timeout_s))
    forget()
    if not in_time and not cancel.cancelled:
        return ended(outcome="error", error=f"timed out after {function.timeout_s:g} s")
    if "value" not in box and "error" not in box:  # stopped: a cancel, a time limit, a lease
        reason = cancel.reason
        error = f"cancelled: {reason}" if cancel.outcome == "cancelled" else reason
        return ended(outcome=cancel.outcome, error=error)
    if "error" in box:
        raised = box["error"]
        return ended(outcome="error", error=f"reducer {name!r} raised {_described(raised)}")
    try:
        data = _json_value(box["value"])
    except (TypeError, ValueError, InvalidRunError) as invalid:
        error = f"reducer {name!r} returned no JSON value: {invalid}"
        return ended(outcome="error", error=error)
    return ended(answer=compact(data), data=data)


def _described(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= 2000 else text[:2000] + " [...cut]"


def _json_value(value: object) -> Any:
    """``value`` as plain JSON (a pydantic model dumped), within the request limits a client
    can read back (depth, finite numbers, valid Unicode)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    check_request_value(value, "the value")
    return json.loads(compact(value))
