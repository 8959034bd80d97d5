"""Loads the Lua scripts in ``lua/`` and runs them. Run scripts get the run prelude in front:
the names of the run's keys, generated from ``keys.py`` (``key_names``), then ``common.lua``,
``budget.lua``, ``window.lua`` and ``group.lua``; the others (``common=False``) stand alone."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache
from importlib.resources import files
from typing import Any

import redis
from redis.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import NoScriptError

from orchestrator.state.keys import GROUP_PARTS, RUN_PARTS, SHARED_RUN_PARTS

Client = redis.Redis | redis.client.Pipeline | RedisCluster


class LuaScript:
    """One script, run by its SHA with a fallback to loading it on a server that lacks it.

    Not bound to a client, so one instance serves every connection and pipeline.
    """

    def __init__(self, source: str) -> None:
        self.script = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, client: Client, keys: Sequence[str], args: Sequence[Any]) -> Any:
        if isinstance(client, redis.client.Pipeline):
            # The pipeline loads the scripts it lacks before executing (redis-py checks
            # ``sha`` and ``script`` on what it is given).
            client.scripts.add(self)  # type: ignore[arg-type]
            return client.evalsha(self.sha, len(keys), *keys, *args)
        if isinstance(client, ClusterPipeline):
            # redis-py refuses ``evalsha`` by name on a cluster pipeline, but routes the command
            # by its first key; a shard that lacks the script answers NOSCRIPT at execute,
            # and the caller loads it (``load``) and executes again.
            return client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)  # type: ignore[no-untyped-call]
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            # On a Redis Cluster, SCRIPT LOAD goes to every primary.
            client.script_load(self.script)
            return client.evalsha(self.sha, len(keys), *keys, *args)

    def load(self, client: redis.Redis | RedisCluster) -> None:
        """Load the script on ``client``'s server (every primary of a Redis Cluster)."""
        client.script_load(self.script)


# In this order: each part uses what the ones before it define.
RUN_PRELUDE = ("common", "budget", "window", "group")

# Run scripts declare Redis 7 script flags (a shebang, the first line of the script's text):
# without ``allow-oom`` a full Redis (maxmemory under noeviction) refuses the whole script up
# front, whatever its first write (a deletion would otherwise let the rest through). Only a
# lease renewal runs while Redis is full: it adds almost nothing, and without it the leases of
# the members that wait for room would expire and the members run again.
RUN_FLAGS = {"renew_lease": "allow-oom"}


def shebang(name: str) -> str:
    """The first line of run script ``name``: its flags, none (deny-oom) unless listed."""
    flags = RUN_FLAGS.get(name)
    return f"#!lua flags={flags}\n" if flags else "#!lua\n"


def lua_key_name(part: str) -> str:
    """The Lua name of a run's key of part ``part`` (``RUN_PARTS``): ``K_RUN`` for the hash,
    else ``K_`` and the part in capitals (``K_LEASES``)."""
    return f"K_{(part or 'run').upper()}"


def key_names() -> str:
    """The Lua that names a run script's keys, generated from ``keys.py`` so that the order of
    a run's keys is declared once (``RUN_PARTS``): ``K_RUN``... for ``KEYS[1..16]``,
    ``RUN_KEYS`` (all of them in order), ``RUN_KEY_COUNT``; for a run of a concurrency group,
    ``GROUP_PARTS`` (the offset of each of the group's keys after the run's),
    ``GROUP_KEY_COUNT``, ``SHARED_RUN_PARTS`` (the parts declared for each of the group's
    other runs, in order) and ``SHARED_RUN_KEYS`` (this run's keys of those parts; see
    ``lua/group.lua``)."""
    names = [lua_key_name(part) for part in RUN_PARTS]
    lines = ["-- Generated from orchestrator/state/keys.py (scripts.py key_names)."]
    lines += [f"local {name} = KEYS[{i}]" for i, name in enumerate(names, 1)]
    lines.append(f"local RUN_KEY_COUNT = {len(names)}")
    lines.append(f"local RUN_KEYS = {{{', '.join(names)}}}")
    offsets = ", ".join(f"{part} = {i}" for i, part in enumerate(GROUP_PARTS))
    lines.append(f"local GROUP_PARTS = {{{offsets}}}")
    lines.append(f"local GROUP_KEY_COUNT = {len(GROUP_PARTS)}")
    shared = [part or "run" for part in SHARED_RUN_PARTS]
    lines.append(f"local SHARED_RUN_PARTS = {{{', '.join(repr(part) for part in shared)}}}")
    own = ", ".join(f"{part} = {lua_key_name(part)}" for part in shared)
    lines.append(f"local SHARED_RUN_KEYS = {{{own}}}")
    return "\n".join(lines) + "\n"


@cache
def _script(name: str, common: bool) -> LuaScript:
    folder = files("orchestrator.state.lua")
    parts = RUN_PRELUDE if common else ()
    prelude = "".join((folder / f"{part}.lua").read_text() + "\n" for part in parts)
    if common:
        prelude = shebang(name) + key_names() + prelude
    return LuaScript(prelude + (folder / f"{name}.lua").read_text())


def run_script(
    client: Client,
    name: str,
    keys: Sequence[str],
    args: Sequence[Any],
    common: bool = True,
) -> Any:
    """Run script ``name`` with ``keys`` and ``args`` on ``client`` (a pipeline queues it)."""
    return _script(name, common)(client, keys, args)


def load_script(client: redis.Redis | RedisCluster, name: str, common: bool = True) -> None:
    """Load script ``name`` on ``client``'s server(s): what a cluster pipeline that met
    NOSCRIPT does before executing again."""
    _script(name, common).load(client)
