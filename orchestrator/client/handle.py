"""A submitted run as the client holds it: its status, budget, events, result, outputs and
cancel."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Generic, TypeVar

import redis
from pydantic import BaseModel

from orchestrator.errors import RunFailedError, RunNotFoundError, RunTimeoutError
from orchestrator.models import TERMINAL_STATES, AgentOutput, RunStatus
from orchestrator.state import events as run_events
from orchestrator.state.budget import Ledger, RunBudget
from orchestrator.state.results import ended_result
from orchestrator.state.store import OUTPUT_PAGE

if TYPE_CHECKING:
    from orchestrator.client.client import Client

ResultT = TypeVar("ResultT", bound=BaseModel)


class RunHandle(Generic[ResultT]):
    """A submitted run: its id, status, events, result and cancel."""

    def __init__(self, client: Client, run_id: str, result_model: type[ResultT]) -> None:
        self.client = client
        self.id = run_id
        self._result_model = result_model

    def __repr__(self) -> str:
        return f"RunHandle({self.id!r})"

    def status(self) -> RunStatus:
        """State (``pending|running|succeeded|failed|cancelled``) and counts by outcome."""
        status = self.client.store.status(self.id)
        if status is None:
            raise RunNotFoundError(f"no run with id {self.id!r}")
        return status

    def budget(self) -> Ledger:
        """The run's budget now: its limits, what its model calls spent, and what the calls in
        flight have reserved. Calls are counted in runs with ``max_tokens`` or
        ``max_cost_usd`` (a run without either keeps no ledger of its calls; its outputs
        report their usage)."""
        if not self.client.store.exists(self.id):
            raise RunNotFoundError(f"no run with id {self.id!r}")
        return RunBudget(self.client.redis, self.id).ledger()

    def events(self, follow: bool = True) -> Iterator[run_events.Event]:
        """The run's events from the first; with ``follow``, live until ``RunEnd``."""
        return run_events.follow(self.client.redis, self.id, follow=follow)

    def wait(self, timeout: float | None = None) -> RunStatus:
        """Block until the run ends (woken by its event stream, not by polling).

        A Redis outage is waited out until ``timeout``; then ``RunTimeoutError`` says Redis
        was unreachable. A run that vanished (a flushed Redis, or one restarted without
        persistence) raises ``RunNotFoundError``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = 1.0 if deadline is None else deadline - time.monotonic()
            try:
                status = self.status()
                if status.state in TERMINAL_STATES:
                    return status
                if remaining <= 0:
                    raise RunTimeoutError(f"run {self.id} did not end within {timeout} s")
                block_ms = max(1, int(min(remaining, 1.0) * 1000))
                self.client.store.wait_for_end(self.id, block_ms)
            except (redis.ConnectionError, redis.TimeoutError) as outage:
                if remaining <= 0:
                    raise RunTimeoutError(
                        f"run {self.id} did not end within {timeout} s: Redis is unreachable "
                        f"({type(outage).__name__})"
                    ) from None
                time.sleep(min(0.5, max(remaining, 0.01)))

    def result(self, timeout: float | None = None) -> ResultT:
        """Wait for the run and return its result. A cancelled run returns the outputs it has;
        a failed run raises ``RunFailedError`` (whose ``result`` holds what it has).

        The result is built from what the run keeps, its outputs read in pages and parsed one
        by one (see ``outputs``): a run of any size is never one JSON document."""
        status = self.wait(timeout)
        built = ended_result(self.client.store, self.id)
        result = self._result_model.model_validate(built) if built is not None else None
        if status.state == "failed":
            raise RunFailedError(self.id, status.error, result)
        if result is None:
            raise RunFailedError(self.id, "the run ended without a result")
        return result

    def outputs(
        self, start: int = 0, stop: int | None = None, page_size: int = OUTPUT_PAGE
    ) -> Iterator[AgentOutput]:
        """The outputs of members ``start`` to ``stop - 1`` (by default, to the last member),
        in member order: mappers in item order, branches in config order (a reducer's or a
        judge's output is not among them).

        They are read from Redis ``page_size`` at a time and parsed one by one, so that a run of
        any size can be gone through in little memory. During a run, members that have not
        ended yet are skipped (a mapper's ``name`` ends with its index); once the run ended,
        every member has an output. Raises ``RunNotFoundError`` when the run does not exist,
        ``ValueError`` for a negative ``start`` or ``stop`` or a ``page_size`` below 1."""
        if not self.client.store.exists(self.id):
            raise RunNotFoundError(f"no run with id {self.id!r}")
        indexed = self.client.store.indexed_outputs(self.id, start, stop, page_size)
        return (output for _, output in indexed)

    def cancel(self, reason: str = "cancelled by the user") -> bool:
        """Stop the run: queued members are revoked, running ones are interrupted (a model
        call in flight is aborted), the rest end ``cancelled`` at once. True while the run has
        not ended (also when a deadline already flagged it), False when it had ended."""
        flagged = self.client.store.request_cancel(self.id, reason)
        if flagged:
            self.client.send_cancel(self.id)
        return flagged
