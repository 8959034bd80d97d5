"""agent-orchestrator: run LLM-agent work across many machines on Celery + Redis."""

from orchestrator.client import Client, RunHandle
from orchestrator.errors import (
    InvalidRunError,
    OrchestratorError,
    RunFailedError,
    RunNotFoundError,
    RunTimeoutError,
)
from orchestrator.models import (
    AgentOutput,
    AgentSpec,
    Budget,
    CallRecord,
    MapReduceResult,
    Message,
    ModelConfig,
    RunRecord,
    RunStatus,
    Usage,
)

__all__ = [
    "AgentOutput",
    "AgentSpec",
    "Budget",
    "CallRecord",
    "Client",
    "InvalidRunError",
    "MapReduceResult",
    "Message",
    "ModelConfig",
    "OrchestratorError",
    "RunFailedError",
    "RunHandle",
    "RunNotFoundError",
    "RunRecord",
    "RunStatus",
    "RunTimeoutError",
    "Usage",
]
