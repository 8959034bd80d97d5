"""Loads the Lua scripts in ``lua/`` and runs them. Run scripts get the run prelude in front
(``common.lua``, ``budget.lua``, ``window.lua``, ``group.lua``); the others (``common=False``)
stand alone."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.resources import files
from typing import Any

import redis
from redis.exceptions import NoScriptError


class LuaScript:
    """One script, run by its SHA with a fallback to loading it on a server that lacks it.

    Not bound to a client, so one instance serves every connection and pipeline.
    """

    def __init__(self, source: str) -> None:
        self.script = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(
        self, client: redis.Redis | redis.client.Pipeline, keys: list[str], args: list[Any]
    ) -> Any:
        if isinstance(client, redis.client.Pipeline):
            # The pipeline loads the scripts it lacks before executing (redis-py checks
            # ``sha`` and ``script`` on what it is given).
            client.scripts.add(self)  # type: ignore[arg-type]
            return client.evalsha(self.sha, len(keys), *keys, *args)
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            client.script_load(self.script)
            return client.evalsha(self.sha, len(keys), *keys, *args)


# In this order: each part uses what the ones before it define.
RUN_PRELUDE = ("common", "budget", "window", "group")


@cache
def _script(name: str, common: bool) -> LuaScript:
    folder = files("orchestrator") / "lua"
    parts = RUN_PRELUDE if common else ()
    prelude = "".join((folder / f"{part}.lua").read_text() + "\n" for part in parts)
    return LuaScript(prelude + (folder / f"{name}.lua").read_text())


def run_script(
    client: redis.Redis | redis.client.Pipeline,
    name: str,
    keys: list[str],
    args: list[Any],
    common: bool = True,
) -> Any:
    """Run script ``name`` with ``keys`` and ``args`` on ``client`` (a pipeline queues it)."""
    return _script(name, common)(client, keys, args)
