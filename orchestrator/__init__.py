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
    Message,
    ModelConfig,
    RunRecord,
    RunStatus,
    ToolCall,
    Usage,
)
from orchestrator.results import AgentRunResult, BranchOutcome, MapReduceResult, ParallelResult
from orchestrator.tools import Tool, ToolInfo, ToolPolicy, tool

__all__ = [
    "AgentOutput",
    "AgentRunResult",
    "AgentSpec",
    "BranchOutcome",
    "Budget",
    "CallRecord",
    "Client",
    "InvalidRunError",
    "MapReduceResult",
    "Message",
    "ModelConfig",
    "OrchestratorError",
    "ParallelResult",
    "RunFailedError",
    "RunHandle",
    "RunNotFoundError",
    "RunRecord",
    "RunStatus",
    "RunTimeoutError",
    "Tool",
    "ToolCall",
    "ToolInfo",
    "ToolPolicy",
    "Usage",
    "tool",
]
