"""Errors raised to users of the client and CLI."""


class OrchestratorError(Exception):
    """Base class of every error agent-orchestrator raises on purpose."""


class InvalidRunError(OrchestratorError, ValueError):
    """A submission was rejected before anything was dispatched."""


class RunNotFoundError(OrchestratorError, LookupError):
    """No run with this id exists in Redis."""


class RunFailedError(OrchestratorError):
    """The run ended in the ``failed`` state; ``status`` says why."""

    def __init__(self, run_id: str, error: str | None) -> None:
        super().__init__(f"run {run_id} failed: {error or 'unknown error'}")
        self.run_id = run_id
        self.error = error


class RunTimeoutError(OrchestratorError, TimeoutError):
    """Waiting for a run's result took longer than the timeout (the run goes on)."""
