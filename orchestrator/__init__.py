"""agent-orchestrator: run LLM-agent work across many machines on Celery + Redis."""

from orchestrator.agents import AgentContext, AgentFunction, ToolCallError, agent
from orchestrator.client import Client, RunHandle
from orchestrator.errors import (
    ClientClosedError,
    InvalidRunError,
    OrchestratorError,
    RunFailedError,
    RunNotFoundError,
    RunTimeoutError,
    WritesRefusedError,
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
from orchestrator.models.cache_records import CacheDecision
from orchestrator.models.results import (
    AgentRunResult,
    BranchOutcome,
    MapReduceResult,
    ParallelResult,
)
from orchestrator.plans import ExecutionPlan, ParallelGroup, ParallelHint
from orchestrator.plans.cache_plans import CachePlan, CacheProfile
from orchestrator.reducers import Reducer, reducer
from orchestrator.strategies import Strategy, strategy
from orchestrator.tools import Tool, ToolInfo, ToolPolicy, idempotency_key, tool

__all__ = [
    "AgentContext",
    "AgentFunction",
    "AgentOutput",
    "AgentRunResult",
    "AgentSpec",
    "BranchOutcome",
    "Budget",
    "CacheDecision",
    "CachePlan",
    "CacheProfile",
    "CallRecord",
    "Client",
    "ClientClosedError",
    "ExecutionPlan",
    "InvalidRunError",
    "MapReduceResult",
    "Message",
    "ModelConfig",
    "OrchestratorError",
    "ParallelGroup",
    "ParallelHint",
    "ParallelResult",
    "Reducer",
    "RunFailedError",
    "RunHandle",
    "RunNotFoundError",
    "RunRecord",
    "RunStatus",
    "RunTimeoutError",
    "Strategy",
    "Tool",
    "ToolCall",
    "ToolCallError",
    "ToolInfo",
    "ToolPolicy",
    "Usage",
    "WritesRefusedError",
    "agent",
    "idempotency_key",
    "reducer",
    "strategy",
    "tool",
]
