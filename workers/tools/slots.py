"""A tool call's hold on its tool's shared limit, which may outlive the wait for the call (a
sync thread past its timeout, a remote call being stopped), and what the model is told about a
call that was stopped.

Giving a slot back never fails a call: a call that completed keeps its result when Redis is
unreachable at that moment, and the slot, no longer renewed, is free one lease later."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future
from typing import Any
from uuid import uuid4

import redis

from workers.limits import SharedLimit
from workers.tools.calls import RemoteCall, SlotRef

log = logging.getLogger(__name__)

SYNC_MAY_COMPLETE = "; it keeps running in its thread and may still complete (its result unread)"
REMOTE_NOT_STARTED = "; it had not started on a tools worker, and never will"
REMOTE_STOPPED = (
    "; it was running on a tools worker, which stops it: it may have done part or all of its work"
)
REMOTE_STOP_FAILED = (
    "; stopping it failed (the run store was unreachable): it may still run on a tools worker "
    "and may still complete"
)


def release_quietly(limit: SharedLimit, token: str) -> None:
    """Give back ``token``'s slot; a failure is logged, not raised: the slot is no longer
    renewed, so its lease frees it."""
    try:
        limit.release(token)
    except redis.RedisError as outage:
        log.warning("%s: releasing a slot failed, its lease frees it (%s)", limit.name, outage)


class Slot:
    """A call's place in its tool's shared limit (none when the tool has no limit)."""

    def __init__(self, limit: SharedLimit | None) -> None:
        self._limit = limit
        self._token = uuid4().hex
        self._held = False
        self._handed_over = False

    async def acquire(self) -> None:
        if self._limit is None:
            return
        while (wait_s := self._limit.try_acquire(self._token)) > 0:
            await asyncio.sleep(self._limit.pause(wait_s))
        self._held = True

    def ref(self) -> SlotRef | None:
        """What a tools worker needs to renew this slot while it runs the call."""
        if self._limit is None or not self._held:
            return None
        return {"name": self._limit.name, "token": self._token}

    def release_when_done(self, future: Future[Any]) -> None:
        """The slot is held (renewed) until ``future`` is done, however long after the call's
        waiter stopped: a thread that still runs still counts against the limit."""
        if self._limit is not None:
            self._handed_over = True
            limit, token = self._limit, self._token
            future.add_done_callback(lambda _: release_quietly(limit, token))

    def release_after(self, remote: RemoteCall) -> None:
        """Release the slot once ``remote`` has really ended, on a thread of its own."""
        if self._limit is None or not self._held:
            return
        self._handed_over = True
        limit, token = self._limit, self._token

        def wait_then_release() -> None:
            try:
                remote.wait_ended()
            except Exception as failure:  # released anyway: the tools worker renews it if need be
                log.warning("%s: waiting for a stopped call failed (%s)", limit.name, failure)
            finally:
                release_quietly(limit, token)

        threading.Thread(target=wait_then_release, name="ao-remote-slot", daemon=True).start()

    def settle(self) -> None:
        if self._limit is not None and not self._handed_over:
            release_quietly(self._limit, self._token)


class Attempt:
    """What the runner learnt about a call that was stopped: appended to what the model reads."""

    note = ""
