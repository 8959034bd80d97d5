"""Concurrency groups: limits shared by every run that names the group, across all workers.

Operators declare groups on the workers (``ORCHESTRATOR_GROUP_LIMITS='{"team-a": 50}'``); a
run names one (``group="team-a"``). Each worker records its limits in Redis, in a sorted set
per group (hostname -> limit), at start and at every watchdog pass. The limit that holds is the
lowest that a live worker declares, read by the admission scripts at each admission
(``lua/group.lua``), so workers that disagree are safe: a lower limit holds as soon as one
worker declares it, a higher one once no live worker declares a lower. When no declaring
worker is live, the lowest recorded declaration holds until one starts again.
"""

from __future__ import annotations

from typing import cast

import redis

from orchestrator.state.keys import GROUPS, GroupKeys
from orchestrator.state.presence import live_workers
from orchestrator.state.scripts import run_script


def declare(client: redis.Redis, hostname: str, limits: dict[str, int], ttl_ms: int) -> None:
    """Record that worker ``hostname`` declares ``limits`` (group name -> limit) for the next
    ``ttl_ms`` (its presence), dropping the declarations that lapsed (see
    ``declare_group.lua``): one script per group, each on its group's shard of a Redis Cluster,
    after the group's name is listed in ``GROUPS`` (a plain command: that set lives elsewhere)."""
    if not limits:
        return
    names = sorted(limits)
    client.sadd(GROUPS, *names)
    for name in names:
        keys = GroupKeys(name)
        args = [hostname, limits[name], ttl_ms]
        run_script(client, "declare_group", [keys.limits, keys.live], args, common=False)


def leave(client: redis.Redis, hostname: str, limits: dict[str, int]) -> None:
    """Worker ``hostname`` stops: its declarations no longer hold (another worker's next
    declaration drops them)."""
    if not limits:
        return
    with client.pipeline(transaction=False) as pipe:
        for name in sorted(limits):
            pipe.zrem(GroupKeys(name).live, hostname)
        pipe.execute()


def withdraw_undeclared(client: redis.Redis, hostname: str, limits: dict[str, int]) -> None:
    """Withdraw worker ``hostname``'s declarations of the groups it no longer declares (its
    settings changed since it last ran under this name)."""
    known = {name.decode() for name in cast(set[bytes], client.smembers(GROUPS))}
    with client.pipeline(transaction=False) as pipe:
        for name in sorted(known - set(limits)):
            pipe.zrem(GroupKeys(name).limits, hostname)
            pipe.zrem(GroupKeys(name).live, hostname)
        pipe.execute()


def _lowest_live(declared: list[tuple[bytes, float]], live: set[str]) -> int | None:
    limits = [int(limit) for host, limit in declared if host.decode() in live]
    return min(limits) if limits else None


def limit(client: redis.Redis, name: str) -> int | None:
    """The limit of group ``name``: the lowest a live worker declares; None when no live
    worker declares it."""
    declared = client.zrange(GroupKeys(name).limits, 0, -1, withscores=True)
    return _lowest_live(cast(list[tuple[bytes, float]], declared), set(live_workers(client)))


def live_limits(client: redis.Redis) -> dict[str, int]:
    """Every group a live worker declares, with its limit (see ``limit``)."""
    names = sorted(name.decode() for name in cast(set[bytes], client.smembers(GROUPS)))
    live = set(live_workers(client))
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.zrange(GroupKeys(name).limits, 0, -1, withscores=True)
        replies = pipe.execute()
    lowest = (_lowest_live(declared, live) for declared in replies)
    found = dict(zip(names, lowest, strict=True))
    return {name: value for name, value in found.items() if value is not None}


def in_flight(client: redis.Redis, name: str) -> int:
    """How many members of group ``name``'s runs are in flight now."""
    return int(client.scard(GroupKeys(name).inflight))
