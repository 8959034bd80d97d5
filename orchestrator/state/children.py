"""Child runs in Redis: the links between a run and the runs its members start.

A child run's id begins with its parent's hash tag (so with its root's: a family lives on one
shard of a Redis Cluster). The parent's hash holds ``child:MEMBER:KEY`` -> child id, KEY naming
the call that started it (so a redelivered member adopts the child its earlier execution
started); the child's hash holds ``parent`` and ``parent_member``. The child's ledger holds
``parents``, its ancestors' ledger keys, nearest first: ``lua/budget.lua`` counts what the child
reserves, spends and admits in each of them, and lets it in only where all have room.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast
from uuid import uuid4

import redis

from orchestrator.state.events import ChildRunStart
from orchestrator.state.keys import TAG_DIGITS, run_keys, run_tag
from orchestrator.state.scripts import run_script

CHILD_FIELD = "child:"
PLACEHOLDERS = ("a:", "r:")
"""Holders of a member in flight that no execution has claimed (see ``lua/common.lua``)."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def child_run_id(parent_id: str) -> str:
    """A new id for a child of ``parent_id``: on its parent's shard."""
    return run_tag(parent_id) + uuid4().hex[TAG_DIGITS:]


@dataclass(frozen=True)
class Lineage:
    """Where a child run belongs: its parent run and member, and its ancestors' ledgers."""

    parent_id: str
    member: str
    ledgers: tuple[str, ...]

    def run_fields(self) -> dict[str, str]:
        return {"parent": self.parent_id, "parent_member": self.member}

    def ledger_fields(self) -> dict[str, str]:
        return {"parents": " ".join(self.ledgers)}


class RunFamily:
    """Reads and changes the links between runs.

    Parameters:
        client: the state Redis.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def lineage(self, parent_id: str, member: str) -> Lineage:
        """The lineage of a child that member ``member`` of ``parent_id`` starts."""
        ledger = run_keys(parent_id).budget
        above = self.client.hget(ledger, "parents")
        return Lineage(parent_id, member, (ledger, *(_text(above).split() if above else ())))

    def link(
        self, parent_id: str, member: str, token: str, call_key: str, event: ChildRunStart
    ) -> tuple[str, str]:
        """Link a new child to member ``member`` (held by ``token``) for the call
        ``call_key``, or find the one linked for it before (see ``lua/link_child.lua``)."""
        field = f"{CHILD_FIELD}{member}:{call_key}"
        args = [member, token, field, event.child_run_id, event.model_dump_json()]
        verdict, *rest = run_script(self.client, "link_child", run_keys(parent_id).all, args)
        return _text(verdict), _text(rest[0]) if rest else ""

    def children(self, run_id: str, member: str | None = None) -> list[str]:
        """The child runs of the run (of one of its members), in no particular order."""
        prefix = f"{CHILD_FIELD}{member}:" if member is not None else CHILD_FIELD
        fields = self.client.hscan_iter(run_keys(run_id).run, match=f"{prefix}*", count=500)
        return [_text(child) for _, child in fields]

    def parent_of(self, run_id: str) -> tuple[str, str] | None:
        """(parent run, member) of a child run, None for a run that has no parent."""
        return _parent(self.client, run_id)

    def ancestor_limits(self, run_id: str) -> tuple[bool, bool]:
        """Whether an ancestor of the run limits (tokens, cost): a child run's calls are then
        reserved in the ledgers above it, though its own has no limit. (False, False) for a
        run without a parent."""
        return _ancestor_limits(self.client, run_id)

    def orphaned(self, run_id: str) -> str:
        """Why a child run must end although no one cancelled it ('' when it need not): its
        parent run ended or is being cancelled, or the member that started it ended."""
        try:
            parent = self.parent_of(run_id)
        except LookupError:
            return ""  # the run itself is gone
        if parent is None:
            return ""
        parent_id, member = parent
        keys = run_keys(parent_id)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.run, ["state", "cancel"])
            pipe.hexists(keys.outputs, member)
            (state, cancel), ended = pipe.execute()
        if state is None or _text(state) not in ("pending", "running"):
            return "its parent run ended"
        if cancel:
            return f"its parent run is cancelled: {_text(cancel)}"
        return "the member that started it ended" if ended else ""

    def deadline_left_s(self, run_id: str) -> float | None:
        """Seconds until the run's deadline (None when it has none)."""
        deadline = self.client.hget(run_keys(run_id).run, "deadline_ms")
        if deadline is None:
            return None
        seconds, micros = self.client.time()
        return (int(deadline) - (int(seconds) * 1000 + int(micros) // 1000)) / 1000

    def unclaimed(self, run_id: str) -> list[str]:
        """The run's members in flight that no execution has claimed yet (admitted or queued,
        or taken by a worker that has not started them), ``final`` last."""
        keys = run_keys(run_id)
        members = [_text(m) for m in cast(list[Any], self.client.zrange(keys.leases, 0, -1))]
        if not members:
            return []
        holders = cast(list[Any], self.client.hmget(keys.holders, members))
        free = [m for m, h in zip(members, holders, strict=True) if h and _free(_text(h))]
        return sorted(free, key=lambda m: (m == "final", int(m) if m.isdigit() else 0))

    def last_event_id(self, run_id: str) -> str:
        """The id of the run's latest event ('0-0' when it has none)."""
        last = cast(list[Any], self.client.xrevrange(run_keys(run_id).events, count=1))
        return _text(last[0][0]) if last else "0-0"

    def wait_for_event(self, run_id: str, after: str, block_ms: int) -> str:
        """Block until the run has an event after ``after`` (or ``block_ms`` pass); returns
        the id to wait after next time."""
        key = run_keys(run_id).events
        answer: Any = self.client.xread({key: after}, count=1000, block=block_ms)
        if not answer:
            return after
        return _text(answer[0][1][-1][0])


def _free(holder: str) -> bool:
    return holder.startswith(PLACEHOLDERS)


@lru_cache(maxsize=4096)
def _parent(client: redis.Redis, run_id: str) -> tuple[str, str] | None:
    fields = cast(list[Any], client.hmget(run_keys(run_id).run, ["id", "parent", "parent_member"]))
    if fields[0] is None:
        raise LookupError(run_id)  # not cached: a run not yet written may still be
    if fields[1] is None:
        return None
    return _text(fields[1]), _text(fields[2])


@lru_cache(maxsize=4096)
def _ancestor_limits(client: redis.Redis, run_id: str) -> tuple[bool, bool]:
    above = client.hget(run_keys(run_id).budget, "parents")
    if not above:
        return False, False
    with client.pipeline(transaction=False) as pipe:
        for ledger in _text(above).split():
            pipe.hmget(ledger, ["max_tokens", "max_nusd"])
        limits = pipe.execute()
    return any(t is not None for t, _ in limits), any(c is not None for _, c in limits)
