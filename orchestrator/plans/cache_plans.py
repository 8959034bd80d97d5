"""Cache plans: what the cache learner knows of an agent's prompts, per learning key.

A learning key is one agent's calls to one model on one surface with one tool set
(``surface|model|toolset``). Its profile says, for each block position of the prompt, the
hash most calls had there and how stable it is; how often calls come back within each cache
lifetime; how often a call is continued by the next call of its conversation; and the
shortest prefix the provider was seen to cache. Workers plan each request's cache hints from
it (``workers/cache/planner.py``).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from orchestrator.config.governor import Ttl


class PositionStat(BaseModel):
    """One block position over the window: its dominant hash, the share of calls that had a
    block there (``presence``) and the share of those whose block was the dominant one."""

    hash: str
    presence: float
    share: float

    @property
    def score(self) -> float:
        """Stability: presence times the dominant hash's share."""
        return self.presence * self.share


class Observation(BaseModel):
    """One model call as the learner keeps it in its window (no content, no tokens)."""

    at: float
    """When the call started (Unix seconds)."""
    hashes: list[str]
    """Its blocks' hashes, up to ``CacheGovernorConfig.positions``."""
    continued_after_s: float | None = None
    """Seconds from its end to the next call of its conversation, when that call sent this
    one's whole prompt again (an agent loop's next turn); None when none did."""
    hinted_prefix_tokens: int = 0
    """The longest prefix it gave a breakpoint (token estimate); 0 without breakpoints."""
    cache_tokens: int = 0
    """Cache tokens its usage reported (written, read, or OpenAI's cached)."""
    call: str = ""
    """Which call of which run record it is (a short hash of both), so that a record learned
    again (its batch delivered again) joins the window once; empty when unknown."""


class CacheProfile(BaseModel):
    """What one learning key's window shows (derived from the window on every change)."""

    surface: str
    model: str
    toolset: str
    observations: int = 0
    """Observations in the window."""
    total_observations: int = 0
    positions: list[PositionStat] = Field(default_factory=list)
    reuse_within: dict[Ttl, float] = Field(default_factory=dict)
    """The share of gaps between consecutive calls that are within each lifetime."""
    continued_within: dict[Ttl, float] = Field(default_factory=dict)
    """The share of calls continued by their conversation's next call within each lifetime."""
    long_gaps: float = 0.0
    """The share of gaps longer than OpenAI's in-memory retention."""
    calls_per_minute: float = 0.0
    learned_min_tokens: int = 0
    """A prefix this long or shorter was hinted and the provider cached nothing: the model's
    effective minimum is above it (0: nothing learned)."""
    updated_at: datetime | None = None

    def stable_prefix(self, threshold: float) -> int:
        """How many leading positions score at least ``threshold``."""
        count = 0
        for stat in self.positions:
            if stat.score < threshold:
                break
            count += 1
        return count


class CachePlan(BaseModel):
    """One agent's cache plan. ``version`` grows with every change."""

    agent_id: str
    version: int = 0
    profiles: dict[str, CacheProfile] = Field(default_factory=dict)

    @classmethod
    def empty(cls, agent_id: str) -> CachePlan:
        return cls(agent_id=agent_id)


def learning_key(surface: str, model: str, toolset: str) -> str:
    """The profile a call belongs to within its agent's plan."""
    return f"{surface}|{model}|{toolset}"
