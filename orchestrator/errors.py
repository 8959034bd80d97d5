"""Errors raised to users of the client and CLI."""

from typing import Any


class OrchestratorError(Exception):
    """Base class of every error agent-orchestrator raises on purpose."""


class InvalidRunError(OrchestratorError, ValueError):
    """A submission was rejected before anything was dispatched."""


class WritesRefusedError(OrchestratorError):
    """Redis refused to store a submission (it is full: ``maxmemory`` reached under
    ``noeviction``); the message gives Redis's words. Nothing of the run was left behind: no
    run state, no message queued. Submit it again once Redis has room."""


class ClientClosedError(OrchestratorError, RuntimeError):
    """A closed ``Client`` (or a run handle it returned) was used: it would open connections
    that nothing closes any more. Make a new client (``get_run`` attaches to a run again)."""


class RunNotFoundError(OrchestratorError, LookupError):
    """No run with this id exists in Redis."""


class RunFailedError(OrchestratorError):
    """The run ended in the ``failed`` state; ``error`` says why and ``result`` holds what the
    run has (outputs, outcomes) when it stored any."""

    def __init__(self, run_id: str, error: str | None, result: Any = None) -> None:
        super().__init__(f"run {run_id} failed: {error or 'unknown error'}")
        self.run_id = run_id
        self.error = error
        self.result = result


class RunTimeoutError(OrchestratorError, TimeoutError):
    """Waiting for a run's result took longer than the timeout (the run goes on)."""
