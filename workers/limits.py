"""Limits shared by every worker through Redis: calls at once and calls per minute.

Used for a tool's ``max_concurrency`` and for provider pools, so that 50 concurrent agents on
10 workers make at most N calls at a time to a rate-limited API, not a storm of 429s. A slot is
held under a lease that a thread of its holder renews, so the slot of a holder that dies (its
process killed) is free again within ``lease_s``, and a live holder keeps it however long it
holds it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import uuid4

import redis

from orchestrator.state.keys import rate_key, semaphore_key
from orchestrator.state.scripts import run_script
from workers.execution.cancellation import CancelToken

log = logging.getLogger(__name__)

# A live holder renews its lease this many times per lease length, so that a renewal or two
# may come late (a busy process, a slow Redis) without losing the slot.
RENEWALS_PER_LEASE = 3


class SharedLimit:
    """A named limit; ``hold()`` waits for a slot and releases it afterwards.

    Parameters:
        client: the state Redis.
        name: what is limited (``tool:search``, ``provider:openai:gpt-4o``).
        max_concurrent: the most holders at once, or None.
        per_minute: the most acquisitions in any 60 s, or None.
        lease_s: how long a slot outlives its holder's last renewal (``settings.lease_s``).
    """

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        max_concurrent: int | None,
        per_minute: int | None,
        lease_s: float,
    ) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self._client = client
        self.name = name
        self._max_concurrent = max_concurrent or 0
        self._per_minute = per_minute or 0
        self._lease_ms = max(1, round(lease_s * 1000))
        self._renewals: dict[str, _Renewal] = {}
        self._lock = threading.Lock()

    def try_acquire(self, token: str) -> float:
        """0 when ``token`` took a slot, else the seconds to wait before trying again. A slot
        taken is renewed by a background thread until ``release(token)``: every caller that
        gets 0 must release."""
        wait_ms = run_script(
            self._client,
            "acquire_limit",
            [semaphore_key(self.name), rate_key(self.name)],
            [token, self._max_concurrent, self._per_minute, self._lease_ms],
            common=False,
        )
        if wait_ms == 0 and self._max_concurrent:
            with self._lock:
                if token not in self._renewals:
                    interval_s = self._lease_ms / 1000 / RENEWALS_PER_LEASE
                    self._renewals[token] = _Renewal(self, token, interval_s)
        return float(wait_ms) / 1000

    def renew(self, token: str) -> bool:
        """Extend the lease of ``token``'s slot; False when it holds none (released, or
        reclaimed after its lease ran out: it is then not taken back)."""
        renewed = run_script(
            self._client,
            "renew_limit",
            [semaphore_key(self.name)],
            [token, self._lease_ms],
            common=False,
        )
        return bool(renewed)

    def release(self, token: str) -> None:
        """Give back ``token``'s slot and stop renewing it."""
        if self._max_concurrent:
            with self._lock:
                renewal = self._renewals.pop(token, None)
            if renewal is not None:
                renewal.stop()
            self._client.zrem(semaphore_key(self.name), token)

    def abandon(self, token: str) -> None:
        """Stop renewing ``token``'s slot without giving it back: it stays taken until
        ``release(token)`` or, at the latest, until its lease runs out (``lease_s``). For a
        holder that may never end (a sync tool past its timeout)."""
        with self._lock:
            renewal = self._renewals.pop(token, None)
        if renewal is not None:
            renewal.stop()

    @staticmethod
    def pause(wait_s: float) -> float:
        """How long to sleep before the next try: the wait, capped and jittered so that
        waiters on many workers do not retry in step."""
        return min(wait_s, 0.2) * random.uniform(0.5, 1.0)

    @contextmanager
    def hold(self, cancel: CancelToken | None = None) -> Iterator[None]:
        """Wait for a slot (a cancel stops the wait), hold it for the block, release it."""
        token = uuid4().hex
        while (wait_s := self.try_acquire(token)) > 0:
            if cancel is not None:
                cancel.sleep(self.pause(wait_s))
            else:
                time.sleep(self.pause(wait_s))
        try:
            yield
        finally:
            self.release(token)


class _Renewal:
    """Renews one held slot every ``interval_s`` until stopped, on a thread of its own: a
    daemon thread, so that it dies with its process and the slot's lease then runs out."""

    def __init__(self, limit: SharedLimit, token: str, interval_s: float) -> None:
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(limit, token, interval_s),
            name=f"ao-limit-{limit.name}",
            daemon=True,
        )
        self._thread.start()

    def _run(self, limit: SharedLimit, token: str, interval_s: float) -> None:
        while not self._stopped.wait(interval_s):
            try:
                if not limit.renew(token):
                    log.warning("%s: a slot's lease ran out before it was renewed", limit.name)
                    return
            except redis.RedisError as outage:  # the lease may still hold: try again
                log.warning("%s: renewing a slot failed (%s)", limit.name, outage)

    def stop(self) -> None:
        """Stop renewing; returns once the thread has ended."""
        self._stopped.set()
        self._thread.join()
