"""The Redis keys of what learners keep per agent: its plan and its cache plan, each with its
version beside it, and the learners' counters.

Every key of one agent carries the agent id as its Redis Cluster hash tag (the part in braces),
so that a transaction over an agent's plan, version and seen-count runs on one shard; a
standalone Redis ignores the braces.
"""

from __future__ import annotations

LEARNER_REJECTED = "ao:learner:{learner}:rejected"
LEARNER_LAST_REJECTION = "ao:learner:{learner}:last_rejection"


def learner_deliveries_key(task_id: str) -> str:
    """A learner batch (its task id) delivered again: a hash of its ``starts``, the records
    ``done`` one at a time, and ``finished`` once it is learned whole (``learners.redelivery``)."""
    return f"ao:learner:{{learner}}:deliveries:{task_id}"


def learner_rejected_once_key(task_id: str) -> str:
    """The positions of a learner batch's records counted as rejected (a set)."""
    return f"ao:learner:{{learner}}:deliveries:{task_id}:rejected"


def plan_seen_once_key(agent_id: str, task_id: str) -> str:
    """The positions of a learner batch's records of the agent counted as seen (a set, on the
    shard of the agent's seen-count)."""
    return f"ao:plan:{_agent_tag(agent_id)}:seen:{task_id}"


def _agent_tag(agent_id: str) -> str:
    """``{agent_id}``, the hash tag of an agent's keys; ``ValueError`` for an id holding a
    brace, whose keys would hash by another tag (or none) and land apart on a Cluster. Ids are
    refused at the door already (``orchestrator.plans.agent_ids``): this keeps a key from being
    built
    wrong whatever the caller checked."""
    if "{" in agent_id or "}" in agent_id:
        raise ValueError("an agent id holding '{' or '}' cannot name keys (the hash tag)")
    return f"{{{agent_id}}}"


def plan_key(agent_id: str) -> str:
    """An agent's plan, as JSON."""
    return f"ao:plan:{_agent_tag(agent_id)}"


def plan_version_key(agent_id: str) -> str:
    """The version of an agent's plan, apart so that workers can check it cheaply."""
    return f"ao:plan:{_agent_tag(agent_id)}:version"


def plan_seen_key(agent_id: str) -> str:
    """How many run records of the agent the learners ingested."""
    return f"ao:plan:{_agent_tag(agent_id)}:seen"


def cache_plan_key(agent_id: str) -> str:
    """An agent's cache plan (``CachePlan``), as JSON."""
    return f"ao:cacheplan:{_agent_tag(agent_id)}"


def cache_plan_version_key(agent_id: str) -> str:
    """The version of an agent's cache plan, apart so that workers can check it cheaply."""
    return f"ao:cacheplan:{_agent_tag(agent_id)}:version"


def cache_window_key(agent_id: str) -> str:
    """The cache learner's window of observations per learning key, as JSON."""
    return f"ao:cacheplan:{_agent_tag(agent_id)}:window"
