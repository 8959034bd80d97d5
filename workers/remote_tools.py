"""Remote tool calls: a task on the ``tools`` queue (visible in Flower), awaited without
holding anything a tools worker would need.

Who may run a call is settled by a ticket in Redis that the agent and the tools worker race
for: the worker marks it ``started`` before it runs the tool, the agent marks it ``stopped``
when it stops waiting (timeout, fail-fast, cancel). Only the first mark counts, so a call the
agent stopped before it started never runs, whatever the timing, and a started call is
asked to stop (``stopping``): its tools worker watches the ticket and stops it (an async tool
is cancelled, a sync one runs in a child process that is killed). The tools worker also
stops a call at its time limit itself, so a call outlives no agent by more than that.

The agent waits in its own slot. If the only workers serving ``tools`` have no free slot (for
instance one worker serving both queues with concurrency 1, whose only slot runs this agent),
the call would never start: the caller notices that it was not picked up within
``remote_start_timeout_s``, stops it and fails the call with a message that says why, so the
run goes on instead of hanging.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import uuid4

import redis
from celery import Celery, states

from workers.tool_calls import RemoteCall

CALL_TOOL_TASK = "tasks.tools.call_tool"
# A ticket outlives any message that could still carry its call (Celery's results live a day).
TICKET_TTL_S = 86_400
# How long after its time limit a started call may take to be seen ended (its kill and the
# write of its state).
END_GRACE_S = 30.0


class RemoteToolNotStarted(Exception):
    """No worker picked up a remote tool call in time."""


class RemoteToolFailed(Exception):
    """A remote tool call raised on the tools worker."""


class RemoteToolStopped(Exception):
    """A remote tool call was stopped (by its agent, or at its time limit) on its worker."""


def ticket_key(ticket: str) -> str:
    return f"ao:toolcall:{ticket}"


def claim_start(client: redis.Redis, ticket: str) -> bool:
    """The tools worker's mark: True when the call may run (the agent had not stopped it)."""
    return bool(client.set(ticket_key(ticket), "started", nx=True, ex=TICKET_TTL_S))


def stop_requested(client: redis.Redis, ticket: str) -> bool:
    """Whether the agent asked the started call to stop."""
    return client.get(ticket_key(ticket)) == b"stopping"


class CeleryRemoteCall(RemoteCall):
    """One remote call in flight.

    Parameters:
        app: the Celery app.
        client: the state Redis (where the call's ticket lives).
        name, arguments: the tool and its validated arguments, as JSON values.
        key: the call's idempotency key.
        limit_s: the call's time limit (its tools worker stops it past this).
        start_timeout_s: how long the call may wait to be picked up.
    """

    def __init__(
        self,
        app: Celery,
        client: redis.Redis,
        name: str,
        arguments: dict[str, Any],
        key: str,
        limit_s: float,
        start_timeout_s: float,
    ) -> None:
        self._client = client
        self._name = name
        self._limit_s = limit_s
        self._start_timeout_s = start_timeout_s
        # The task id names the tool (in Flower, in the result backend) and is the ticket.
        self._ticket = f"tool:{name}:{uuid4().hex}"
        self._result = app.send_task(
            CALL_TOOL_TASK,
            args=(name, arguments),
            kwargs={"key": key, "ticket": self._ticket, "limit_s": limit_s},
            queue="tools",
            task_id=self._ticket,
            add_to_parent=False,
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
            if state == states.PENDING and time.monotonic() > deadline and self.stop():
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

    def stop(self) -> bool:
        if self._client.set(ticket_key(self._ticket), "stopped", nx=True, ex=TICKET_TTL_S):
            self._result.revoke()  # its message is dropped unrun, not only refused when run
            return True
        self._client.set(ticket_key(self._ticket), "stopping", xx=True, ex=TICKET_TTL_S)
        return False

    def wait_ended(self) -> None:
        bound = time.monotonic() + self._limit_s + END_GRACE_S
        while self._result.state not in states.READY_STATES and time.monotonic() < bound:
            time.sleep(0.05)
