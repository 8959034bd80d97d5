"""Remote tool calls: a task on the ``tools`` queue (visible in Flower), awaited without
holding anything a tools worker would need.

The agent waits in its own slot. If the only workers serving ``tools`` have no free slot (for
instance one worker serving both queues with concurrency 1, whose only slot runs this agent),
the call would never start: the caller notices that it was not picked up within
``remote_start_timeout_s``, revokes it and fails the call with a message that says why, so the
run goes on instead of hanging.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from celery import Celery, states

from workers.tool_runner import RemoteCall

CALL_TOOL_TASK = "tasks.tools.call_tool"


class RemoteToolNotStarted(Exception):
    """No worker picked up a remote tool call in time."""


class RemoteToolFailed(Exception):
    """A remote tool call raised on the tools worker."""


class CeleryRemoteCall(RemoteCall):
    """One remote call in flight.

    Parameters:
        app: the Celery app.
        name, arguments: the tool and its validated arguments.
        start_timeout_s: how long the call may wait to be picked up.
    """

    def __init__(
        self, app: Celery, name: str, arguments: dict[str, Any], start_timeout_s: float
    ) -> None:
        self._name = name
        self._start_timeout_s = start_timeout_s
        self._result = app.send_task(
            CALL_TOOL_TASK, args=(name, arguments), queue="tools", add_to_parent=False
        )

    async def outcome(self) -> str:
        deadline = time.monotonic() + self._start_timeout_s
        pause = 0.005
        while True:
            # Polling the stored state keeps this thread free of the result backend's
            # subscriptions, and STARTED (task_track_started) tells that a worker took it.
            state = self._result.state
            if state in states.READY_STATES:
                break
            if state == states.PENDING and time.monotonic() > deadline:
                self.cancel()
                raise RemoteToolNotStarted(
                    f"remote tool {self._name!r} was not picked up within "
                    f"{self._start_timeout_s:g} s: no worker with a free slot serves the 'tools' "
                    "queue (a worker whose only slots run agents cannot also run their tools)"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.1)
        if state == states.SUCCESS:
            return str(self._result.result["content"])
        raise RemoteToolFailed(f"remote tool {self._name!r} failed: {self._result.result!r}")

    def cancel(self) -> None:
        self._result.revoke()
