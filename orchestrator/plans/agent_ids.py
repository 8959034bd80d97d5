"""The agent-id rule: which strings may name an agent's plans.

An agent id names Redis keys: ``ao:plan:{agent_id}`` and beside it ``ao:plan:{agent_id}:version``
and ``:seen``, and the cache plan's ``ao:cacheplan:{agent_id}...``. The braces are the Redis
Cluster hash tag that keeps an agent's keys in one slot, so the id itself may hold neither
``{`` nor ``}``: an id starting with ``}`` would leave ``ao:plan:{}x}`` without a tag (hashed
whole) while ``ao:plan:{}x}:version`` is hashed whole too, into another slot. Without ``:`` no
agent id names another agent's keys (``a:version`` would be the version of ``a``'s plan);
without control characters it prints on one line.
"""

from __future__ import annotations

import re

AGENT_ID_PATTERN = r"^[^:{}\x00-\x1f\x7f]{1,200}$"
"""What an agent id may be: 1 to 200 characters, none of ``:``, ``{``, ``}`` or a control
character."""
_AGENT_ID = re.compile(AGENT_ID_PATTERN)


def check_agent_id(agent_id: str) -> str:
    """``agent_id`` if it matches ``AGENT_ID_PATTERN``, else ``ValueError`` saying why."""
    if not _AGENT_ID.match(agent_id):
        raise ValueError(
            f"agent_id {agent_id[:60]!r} names Redis keys: 1 to 200 characters, without ':', "
            "'{', '}' or control characters (it defaults to the name)"
        )
    return agent_id
