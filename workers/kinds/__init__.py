"""The kinds of run, each a ``RunKind`` on the shared capped-chord machinery."""

from __future__ import annotations

from orchestrator.models.requests import RunRequest
from workers.kinds.base import Execution, MemberIdentity, MemberStart, RunKind
from workers.kinds.branches import BranchesKind
from workers.kinds.map_reduce import MapReduceKind
from workers.kinds.single import SingleAgentKind

KINDS: dict[str, RunKind] = {
    "map_reduce": MapReduceKind(),
    "branches": BranchesKind(),
    "agent": SingleAgentKind(),
}


def kind_of(request: RunRequest) -> RunKind:
    """The kind that runs ``request``."""
    return KINDS[request.kind]


__all__ = ["KINDS", "Execution", "MemberIdentity", "MemberStart", "RunKind", "kind_of"]
