"""How the store calls a run's scripts: with every key of the run, and for a script that may
admit members of the run's concurrency group, with the group's keys and the keys of the
group's runs that it may reach, read just before and read again should a run join meanwhile.
The base of every part of ``RunStore``."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, cast

import redis
from redis.exceptions import ResponseError

from orchestrator.config.settings import Settings
from orchestrator.state.keys import RUN_PARTS, SHARED_RUN_PARTS, GroupKeys, run_keys
from orchestrator.state.scripts import run_script
from orchestrator.state.store.replies import text

GROUP_SCRIPTS = {"start_run": False, "complete_member": False, "end_members": False}
"""The run scripts that may admit members of the other runs of the run's concurrency group,
by name -> whether they also reach the runs with a member in flight (``sweep_group``)."""
GROUP_SCRIPTS["sweep_group"] = True
STALE_TRIES = 50
"""How often a grouped run's script is tried again when a run joined its group's rotation
between the read of the rotation and the script (see ``lua/group.lua``): each try follows a
fresh read, and a run joins once, so a few tries always do."""
_SHARED = [RUN_PARTS.index(part) for part in SHARED_RUN_PARTS]
"""Where the keys a script of another run of the group may touch are in ``RunKeys.all``."""


class RunScripts:
    """The state Redis and the settings, and the calls of the run scripts.

    Parameters:
        client: a redis-py client of the state Redis.
        settings: lease length and event stream bound.
    """

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    @property
    def _lease_ms(self) -> int:
        return int(self.settings.lease_s * 1000)

    @property
    def _sweep_ms(self) -> int:
        return max(int(self.settings.sweep_s * 1000), 1)

    def now_ms(self) -> int:
        """Redis's clock in milliseconds (the clock every lease and deadline uses)."""
        seconds, micros = self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def _run(self, run_id: str, script: str, *args: object) -> Any:
        """Run a run script with every key of the run declared (and, for a script that may
        admit members of the run's concurrency group, the group's keys and its runs')."""
        if script in GROUP_SCRIPTS:
            group = self._group_of(run_id)
            if group is not None:
                return self._run_grouped(run_id, group, script, args)
        return run_script(self.client, script, run_keys(run_id).all, args)

    def _group_of(self, run_id: str) -> str | None:
        """The run's concurrency group, from its stored state (never from its request, which a
        worker of another version may be unable to read: the scripts read the group from the
        run's hash, and must be given its keys whatever the request says)."""
        return _cached_group(self.client, run_id)

    def _run_grouped(self, run_id: str, group: str, script: str, args: tuple[object, ...]) -> Any:
        """Run ``script`` declaring the group's keys and the keys of the group's runs that it
        may reach, read just before: those in the rotation (and, for a repair, those with a
        member in flight). A run that joined in between makes the script stop before it writes
        (a ``STALE`` error): it is read again and tried again."""
        group_keys = GroupKeys(group)
        with_inflight = GROUP_SCRIPTS[script]
        for _ in range(STALE_TRIES):
            with self.client.pipeline(transaction=False) as pipe:
                pipe.lrange(group_keys.rotation, 0, -1)
                if with_inflight:
                    pipe.smembers(group_keys.inflight)
                replies = pipe.execute()
            ids = {text(other) for other in replies[0]}
            if with_inflight:
                ids.update(text(slot).partition(":")[0] for slot in replies[1])
            ids.discard(run_id)
            keys = [*run_keys(run_id).all, *group_keys.all]
            for other in sorted(ids):
                other_keys = run_keys(other).all
                keys += [other_keys[index] for index in _SHARED]
            try:
                return run_script(self.client, script, keys, args)
            except ResponseError as error:
                if not str(error).startswith("STALE"):
                    raise
        raise RuntimeError(f"the rotation of group {group!r} kept changing")


@lru_cache(maxsize=4096)
def _stored_group(client: redis.Redis, run_id: str) -> tuple[str | None]:
    fields = cast(list[bytes | None], client.hmget(run_keys(run_id).run, ["id", "group"]))
    if fields[0] is None:
        raise LookupError(run_id)  # not cached: a run not yet written may still be
    return (text(fields[1]) if fields[1] is not None else None,)


def _cached_group(client: redis.Redis, run_id: str) -> str | None:
    """A run's group as stored when it was created (cached: it never changes); None for a run
    without one, or one that does not exist (its scripts find that out)."""
    try:
        return _stored_group(client, run_id)[0]
    except LookupError:
        return None
