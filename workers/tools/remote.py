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
run goes on instead of hanging. Past that deadline the agent only tries the ``stopped`` mark:
if a worker marked the call ``started`` first, the agent keeps waiting for it, never asking it
to stop.

While it runs, the call lives exactly as long as its agent: the agent renews a heartbeat key
of the ticket, and the tools worker stops the call once it is gone (its agent's worker died).
The tools worker renews the call's shared slot while the call runs, so the slot is held
exactly as long as the call (one lease longer at most), whoever is waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Literal
from uuid import uuid4

import redis
from celery import Celery, states

from workers.tools.calls import RemoteCall, SlotRef

log = logging.getLogger(__name__)

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


def caller_key(ticket: str) -> str:
    """The key the calling agent keeps alive while it waits for the call."""
    return f"ao:toolcall:{ticket}:caller"


Claim = Literal["started", "stopped", "lost"]
"""``started``: the call may run here; ``stopped``: its agent stopped it before it started (it
never ran); ``lost``: another delivery of it had started (a redelivery after its tools worker
was lost): it may have done part or all of its work."""


def claim_start(client: redis.Redis, ticket: str) -> Claim:
    """The tools worker's mark: whether the call may run here, and if not, why."""
    if client.set(ticket_key(ticket), "started", nx=True, ex=TICKET_TTL_S):
        return "started"
    return "stopped" if client.get(ticket_key(ticket)) == b"stopped" else "lost"


class CeleryRemoteCall(RemoteCall):
    """One remote call in flight.

    Parameters:
        app: the Celery app.
        client: the state Redis (where the call's ticket lives).
        name, arguments: the tool and its validated arguments, as JSON values.
        key: the call's idempotency key.
        limit_s: the call's time limit (its tools worker stops it past this).
        start_timeout_s: how long the call may wait to be picked up.
        lease_s: how long the call outlives its agent's last heartbeat (``settings.lease_s``).
        slot: the call's held slot, which its tools worker renews while the call runs.
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
        lease_s: float,
        slot: SlotRef | None = None,
    ) -> None:
        self._client = client
        self._name = name
        self._limit_s = limit_s
        self._start_timeout_s = start_timeout_s
        self._lease_s = lease_s
        # The task id names the tool (in Flower, in the result backend) and is the ticket.
        self._ticket = f"tool:{name}:{uuid4().hex}"
        self._beat_at = 0.0
        self._heartbeat()  # before the message: a tools worker may take it at once
        kwargs: dict[str, Any] = {"key": key, "ticket": self._ticket, "limit_s": limit_s}
        kwargs.update(caller=True, slot=slot)
        self._result = app.send_task(
            CALL_TOOL_TASK,
            args=(name, arguments),
            kwargs=kwargs,
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
            self._heartbeat()
            state = self._result.state
            if state in states.READY_STATES:
                break
            # Only the ``stopped`` mark: a worker that marked it ``started`` in the meantime
            # runs it (its STARTED state not yet seen), and is waited for, never stopped.
            if state == states.PENDING and time.monotonic() > deadline and self._mark_stopped():
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

    def _heartbeat(self) -> None:
        """Keep the caller key alive, renewed a few times per lease."""
        now = time.monotonic()
        if now >= self._beat_at:
            lease_ms = max(1, round(self._lease_s * 1000))
            self._client.set(caller_key(self._ticket), "1", px=lease_ms)
            self._beat_at = now + self._lease_s / 3

    def _mark_stopped(self) -> bool:
        """True when this mark came first: the call never runs."""
        if self._client.set(ticket_key(self._ticket), "stopped", nx=True, ex=TICKET_TTL_S):
            self._result.revoke()  # its message is dropped unrun, not only refused when run
            return True
        return False

    def stop(self) -> bool:
        if self._mark_stopped():
            return True
        self._client.set(ticket_key(self._ticket), "stopping", xx=True, ex=TICKET_TTL_S)
        return False

    def wait_ended(self) -> None:
        bound = time.monotonic() + self._limit_s + END_GRACE_S
        while time.monotonic() < bound:
            try:
                if self._result.state in states.READY_STATES:
                    return
            except redis.RedisError as outage:  # the bound still holds: look again
                log.warning("reading a stopped remote call's state failed (%s)", outage)
            time.sleep(0.05)
