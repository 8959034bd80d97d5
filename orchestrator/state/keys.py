"""Names of every Redis key agent-orchestrator writes (all under ``ao:``)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import overload
from uuid import uuid4

ACTIVE_RUNS = "ao:runs:due"
"""A sorted set of the runs not yet ended: run id -> when its next sweep is due (ms, Redis's
clock). A watchdog claims the due runs and pushes them one sweep interval on in one script
(``claim_sweeps.lua``), so each run is swept by one worker per interval. The key is not the
one the former set of active runs had, so that the two never meet."""
RECENT_RUNS = "ao:runs:recent"
"""A sorted set of run ids -> when the run was created (ms, Redis's clock), for ``orchestrator
runs``. Trimmed to the newest ``RECENT_RUNS_KEPT`` at each creation; ids whose run has expired
stay until a listing meets and removes them."""
RECENT_RUNS_KEPT = 1000
WORKERS = "ao:workers"
"""A sorted set of the workers: hostname -> when its presence expires (ms, Redis's clock),
pushed on by its watchdog every pass."""


CANCELS = "ao:cancels"
"""A pub/sub channel: ``run_id\nreason`` when a run is cancelled (by a user or its deadline),
so that workers stop its running members at once rather than at their next heartbeat."""

# Keys that one command or one script uses together carry the same Redis Cluster hash tag
# (the part in braces), so that they live on one shard of a Redis Cluster; a standalone Redis
# ignores the braces. An agent's keys are in ``orchestrator.plans.keys``.


def semaphore_key(name: str) -> str:
    """A limit shared by all workers: a sorted set of holder token -> expiry in ms."""
    return f"ao:limit:{{{name}}}:holders"


def rate_key(name: str) -> str:
    """Calls of the last minute under a per-minute limit: a sorted set of call -> time in ms."""
    return f"ao:limit:{{{name}}}:calls"


def token_window_key(name: str) -> str:
    """Calls of the last window under a tokens-per-minute limit: a sorted set of call -> time
    it was reserved in ms."""
    return f"ao:limit:{{{name}}}:token-calls"


def token_amounts_key(name: str) -> str:
    """The tokens of each call in ``token_window_key``, and their sum under ``#total``."""
    return f"ao:limit:{{{name}}}:tokens"


def pause_key(name: str) -> str:
    """A limit paused for every worker (a provider's 429 said when to retry): the key's TTL is
    what is left of the pause."""
    return f"ao:limit:{{{name}}}:paused"


RUN_ID = re.compile(r"^[0-9a-f]{32}$")
"""What a run id is: 32 hex digits, so that a run's keys are never another run's."""

GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""What a concurrency group's name is: up to 64 letters, digits, ``_``, ``.`` and ``-``,
starting with a letter or a digit; no ``:``, so that a group's keys are never another's."""

GROUPS = "ao:groups"
"""A set of every concurrency group name a worker has declared, so that a worker that no
longer declares one can withdraw its limit from it."""


TAG_DIGITS = 4
"""A run's hash tag is the first ``TAG_DIGITS`` hex digits of its id (65,536 tags, spread
over a Redis Cluster's 16,384 slots): every key of the run carries it, so a run lives on one
shard and its scripts may touch all of its keys."""


def group_tag(name: str) -> str:
    """The hash tag of concurrency group ``name``, which its keys and the ids of its runs
    carry: a group's admission (``lua/group.lua``) admits members of all its runs in one
    script, so they must all live on one shard."""
    return hashlib.sha1(name.encode()).hexdigest()[:TAG_DIGITS]


def run_tag(run_id: str) -> str:
    return run_id[:TAG_DIGITS]


RUN_PARTS = (
    "", "items", "leases", "holders", "outputs", "budget", "reserved", "events", "done",
    "messages", "checkpoints", "records", "deadlines", "denied", "partials", "ended",
)  # fmt: skip
"""The parts of a run's keys, the hash first (``ao:run:{TAG}ID``, the others
``ao:run:{TAG}ID:PART``), in the order of ``KEYS`` of every run script. Declared here only:
``RunKeys`` names its keys from it, and the Lua names of the keys (``K_RUN``, ``K_ITEMS``...)
are generated from it when a script is loaded (``scripts.py``)."""

SHARED_RUN_PARTS = ("", "leases", "holders", "budget", "denied")
"""The keys of a run that a script of another run of its concurrency group may touch (to admit
its members), in the order that script's caller declares them (``lua/group.lua``)."""

GROUP_PARTS = ("limits", "live", "inflight", "rotation", "repaired")
"""The parts of a concurrency group's keys, in the order its scripts expect them."""


class KeyPart:
    """One named key of a key set (``RunKeys``, ``GroupKeys``): ``keys.leases`` is the entry of
    ``keys.all`` at the index of part ``leases`` in ``parts``, so that the order of the parts
    is written once. ``part`` defaults to the attribute's name."""

    def __init__(self, parts: tuple[str, ...], part: str | None = None) -> None:
        self._parts = parts
        self._part = part

    def __set_name__(self, owner: type, name: str) -> None:
        self.index = self._parts.index(name if self._part is None else self._part)

    @overload
    def __get__(self, keys: None, owner: type) -> KeyPart: ...

    @overload
    def __get__(self, keys: RunKeys | GroupKeys, owner: type) -> str: ...

    def __get__(self, keys: RunKeys | GroupKeys | None, owner: type) -> KeyPart | str:
        return self if keys is None else keys.all[self.index]


@dataclass(frozen=True)
class GroupKeys:
    """The keys of one concurrency group, in the order of ``GROUP_PARTS``.

    ``limits`` is a sorted set worker hostname -> the limit it declares (the lowest a live
    worker declares holds); ``live`` a sorted set of the same hostnames -> when that worker's
    declaration lapses unless renewed (its presence expiry, ms: the group's scripts read it
    here rather than in ``ao:workers``, which lives on another shard); ``inflight`` a set of
    ``run_id:member``, one per member in flight in the group's runs (a member holds a group
    slot exactly while it is in its run's ``leases``); ``rotation`` a list of the run ids
    waiting for slots, the next turn first; ``repaired`` a short-lived marker: the group's
    slots were checked within a lease.
    """

    name: str
    all: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        base = f"ao:group:{{{group_tag(self.name)}}}{self.name}"
        object.__setattr__(self, "all", tuple(f"{base}:{part}" for part in GROUP_PARTS))

    limits = KeyPart(GROUP_PARTS)
    live = KeyPart(GROUP_PARTS)
    inflight = KeyPart(GROUP_PARTS)
    rotation = KeyPart(GROUP_PARTS)
    repaired = KeyPart(GROUP_PARTS)


def new_run_id(group: str | None = None) -> str:
    """A new run id: 32 random hex digits, except that a run in concurrency group ``group``
    begins with the group's tag (see ``group_tag``), so that it shares the group's shard."""
    fresh = uuid4().hex
    if group is None:
        return fresh
    return group_tag(group) + fresh[TAG_DIGITS:]


@dataclass(frozen=True)
class RunKeys:
    """The keys of one run.

    ``run`` is a hash (state, request, counters, and once ended ``result``: the run's *ending*,
    what its result adds to the rest, see ``orchestrator/state/results.py``); ``items`` a list of
    item JSON; ``leases`` a sorted set member -> lease expiry in ms (a member is in flight while
    it is there); ``holders`` a hash member -> token of the execution that holds the lease;
    ``outputs`` a hash index -> AgentOutput JSON (first write wins); ``budget`` the ledger hash,
    ``reserved`` the model calls in flight and ``ended`` how each ended call ended, settled or
    charged, until its member completes (see ``lua/budget.lua``); ``events`` the run's
    stream; ``done`` a stream with one entry once the run has ended (what waiters block on);
    ``messages`` a hash member -> the messages it added to its context (branches and single
    runs); ``checkpoints`` a hash member -> the agent state after its last completed turn,
    while it runs; ``records`` a hash member -> its RunRecord (single runs: other records
    go to the learners only); ``partials`` a hash of a map-reduce's tree reduce:
    ``level.chunk`` -> the AgentOutput of that partial reducer, and ``agent:level.chunk`` -> 1
    once it was counted as an agent.

    Every key carries the run's hash tag (``{TAG}``, see ``TAG_DIGITS``), so that a run lives
    on one shard of a Redis Cluster. ``deadlines`` (member -> its time limit, ms) and
    ``denied`` (member -> why the budget denied it, until it is ended) are used by scripts
    alone.

    Once the run ended, its ``items``, ``leases``, ``holders``, ``checkpoints`` and limits are
    deleted and the rest expires after ``result_ttl_s``.

    A member is an item index, or ``final`` for the agent that runs after the members (a
    reducer, a judge).
    """

    run_id: str
    all: tuple[str, ...] = field(init=False, repr=False, compare=False)
    """Every key of the run, in the order of ``RUN_PARTS`` (what every run script is given):
    built once, since every script call sends them all."""

    def __post_init__(self) -> None:
        run = f"ao:run:{{{run_tag(self.run_id)}}}{self.run_id}"
        names = (run, *(f"{run}:{part}" for part in RUN_PARTS[1:]))
        object.__setattr__(self, "all", names)

    run = KeyPart(RUN_PARTS, "")
    items = KeyPart(RUN_PARTS)
    leases = KeyPart(RUN_PARTS)
    holders = KeyPart(RUN_PARTS)
    outputs = KeyPart(RUN_PARTS)
    budget = KeyPart(RUN_PARTS)
    reserved = KeyPart(RUN_PARTS)
    events = KeyPart(RUN_PARTS)
    done = KeyPart(RUN_PARTS)
    messages = KeyPart(RUN_PARTS)
    checkpoints = KeyPart(RUN_PARTS)
    records = KeyPart(RUN_PARTS)
    deadlines = KeyPart(RUN_PARTS)
    denied = KeyPart(RUN_PARTS)
    partials = KeyPart(RUN_PARTS)
    ended = KeyPart(RUN_PARTS)


@lru_cache(maxsize=4096)
def run_keys(run_id: str) -> RunKeys:
    """``RunKeys(run_id)``, cached: a worker calls scripts of the same runs over and over."""
    return RunKeys(run_id)


def member_task_id(run_id: str, index: int) -> str:
    """The Celery task id of mapper ``index``: stable, so a republished member is the same task."""
    return f"{run_id}-m{index}"


def batch_task_id(run_id: str, first: int) -> str:
    """The Celery task id of a message of several members, named after its first."""
    return f"{run_id}-b{first}"


def admit_task_id(run_id: str) -> str:
    return f"{run_id}-admit"


def body_task_id(run_id: str) -> str:
    return f"{run_id}-body"


def final_task_id(run_id: str) -> str:
    return f"{run_id}-final"


FINAL_MEMBER = "final"


def worker_names_key(hostname: str) -> str:
    """What a worker serves by name (JSON: ``strategies``, ``endpoints``), expiring with its
    presence."""
    return f"ao:worker:{hostname}:names"


def worker_tools_key(hostname: str) -> str:
    """The tools a worker serves (a JSON list of ToolInfo), expiring with its presence."""
    return f"ao:worker:{hostname}:tools"


def worker_mcp_key(hostname: str) -> str:
    """The MCP servers of a worker (a JSON list of McpServerInfo), expiring with its presence."""
    return f"ao:worker:{hostname}:mcp"


def member_of_task(task_id: str) -> tuple[str, str] | None:
    """(run id, member) of a member's or final agent's Celery task id, else None."""
    run_id, sep, suffix = task_id.rpartition("-")
    if not sep:
        return None
    if suffix == FINAL_MEMBER:
        return run_id, FINAL_MEMBER
    if suffix.startswith("m") and suffix[1:].isdigit():
        return run_id, suffix[1:]
    return None
