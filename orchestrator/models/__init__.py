"""The pydantic models that cross the wire: agent specs, budgets, outputs, records, results.

Every model here serializes to plain JSON; tasks receive and return them as dicts. They live in
modules by concern (``agents``: what an agent is; ``outputs``: what it produces; ``records``:
its traces for the learners; ``runs``: a run's status) and are all importable from here.
"""

from orchestrator.models.agents import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    KNOWN_PROVIDERS,
    OUTPUT_LIMIT_OPTIONS,
    REQUEST_OPTIONS,
    WORKER_OWNED_OPTIONS,
    WORKER_SET_OPTIONS,
    AgentSpec,
    Budget,
    ModelConfig,
)
from orchestrator.models.cache_records import CacheDecision, CacheMode, PromptBlock
from orchestrator.models.outputs import (
    OUTCOMES,
    AgentOutput,
    Message,
    Outcome,
    ToolCall,
    Usage,
    utcnow,
)
from orchestrator.models.records import AgentCheckpoint, CallRecord, RunRecord
from orchestrator.models.runs import TERMINAL_STATES, RunState, RunStatus
from orchestrator.models.thinking import ThinkingBlock
from orchestrator.models.timestamps import UtcTimestamp
from orchestrator.plans import PlanMode
from orchestrator.tools import ToolPolicy

__all__ = [
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "KNOWN_PROVIDERS",
    "OUTCOMES",
    "OUTPUT_LIMIT_OPTIONS",
    "REQUEST_OPTIONS",
    "TERMINAL_STATES",
    "WORKER_OWNED_OPTIONS",
    "WORKER_SET_OPTIONS",
    "AgentCheckpoint",
    "AgentOutput",
    "AgentSpec",
    "Budget",
    "CacheDecision",
    "CacheMode",
    "CallRecord",
    "Message",
    "ModelConfig",
    "Outcome",
    "PlanMode",
    "PromptBlock",
    "RunRecord",
    "RunState",
    "RunStatus",
    "ThinkingBlock",
    "ToolCall",
    "ToolPolicy",
    "Usage",
    "UtcTimestamp",
    "utcnow",
]
