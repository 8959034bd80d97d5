"""What a tools worker watches while it runs a remote call: whether the call must stop (its
agent asked, or its agent is gone), and the call's shared slot, renewed as long as it runs."""

from __future__ import annotations

import logging
import time

import redis

from workers.limits import RENEWALS_PER_LEASE, SharedLimit
from workers.tools.calls import SlotRef
from workers.tools.remote import caller_key, ticket_key

log = logging.getLogger(__name__)


class RemoteWatch:
    """Called every ``WATCH_S`` while the call runs; True once it must stop (``reason`` then
    says why).

    Parameters:
        client: the state Redis.
        ticket: the call's ticket.
        caller: whether its agent keeps a heartbeat (agents of earlier versions do not).
        slot: the call's held slot, or None.
        lease_s: how long a slot outlives its last renewal (``settings.lease_s``).
    """

    def __init__(
        self,
        client: redis.Redis,
        ticket: str,
        caller: bool,
        slot: SlotRef | None,
        lease_s: float,
    ) -> None:
        self._client = client
        self._ticket = ticket
        self._caller = caller
        self._slot = slot
        self._limit = SharedLimit(client, slot["name"], 1, None, lease_s) if slot else None
        self._every_s = lease_s / RENEWALS_PER_LEASE
        self._renew_at = 0.0
        self.reason = ""

    def __call__(self) -> bool:
        try:
            self.reason = self._must_stop()
        except redis.RedisError as outage:  # the call's time limit still bounds it
            log.warning("watching remote call %s failed (%s)", self._ticket, outage)
        return bool(self.reason)

    def _must_stop(self) -> str:
        if self._limit is not None and self._slot is not None:
            now = time.monotonic()
            if now >= self._renew_at:
                # Renewed here, not only by the agent: the slot then lives as long as the
                # call, even when the agent's worker died.
                if not self._limit.renew(self._slot["token"]):
                    return "its shared slot was lost"
                self._renew_at = now + self._every_s
        state, alive = self._client.mget([ticket_key(self._ticket), caller_key(self._ticket)])
        if state == b"stopping":
            return "its agent stopped it"
        if self._caller and alive is None:
            return "its agent was lost"
        return ""
