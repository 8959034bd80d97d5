"""A tool call's hold on its tool's shared limit, which may outlive the wait for the call (a
sync thread past its timeout, a remote call being stopped), and what the model is told about a
call that was stopped."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any
from uuid import uuid4

from workers.limits import SharedLimit
from workers.tool_calls import RemoteCall

SYNC_MAY_COMPLETE = "; it keeps running in its thread and may still complete (its result unread)"
REMOTE_NOT_STARTED = "; it had not started on a tools worker, and never will"
REMOTE_STOPPED = (
    "; it was running on a tools worker, which stops it: it may have done part or all of its work"
)


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

    def release_when_done(self, future: Future[Any]) -> None:
        """The slot is released when ``future`` is done, not when the call's waiter stops."""
        if self._limit is not None:
            self._handed_over = True
            limit, token = self._limit, self._token
            future.add_done_callback(lambda _: limit.release(token))

    def abandon(self) -> None:
        """Stop renewing: the slot is free one lease after this, if not released before."""
        if self._limit is not None:
            self._limit.abandon(self._token)

    def release_after(self, remote: RemoteCall) -> None:
        """Release the slot once ``remote`` has really ended, on a thread of its own."""
        if self._limit is None or not self._held:
            return
        self._handed_over = True
        limit, token = self._limit, self._token

        def wait_then_release() -> None:
            try:
                remote.wait_ended()
            finally:
                limit.release(token)

        threading.Thread(target=wait_then_release, name="ao-remote-slot", daemon=True).start()

    def settle(self) -> None:
        if self._limit is not None and not self._handed_over:
            self._limit.release(self._token)


class Attempt:
    """What the runner learnt about a call that was stopped: appended to what the model reads."""

    note = ""
