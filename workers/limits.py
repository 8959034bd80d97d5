"""Limits shared by every worker through Redis: calls at once and calls per minute.

Used for a tool's ``max_concurrency`` and for provider pools, so that 50 concurrent agents on
10 workers make at most N calls at a time to a rate-limited API, not a storm of 429s.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import uuid4

import redis

from orchestrator.keys import rate_key, semaphore_key
from orchestrator.scripts import run_script
from workers.cancellation import CancelToken

# A holder that dies keeps its slot at most this long: longer than any call should take.
HOLD_S = 600.0


class SharedLimit:
    """A named limit; ``hold()`` waits for a slot and releases it afterwards.

    Parameters:
        client: the state Redis.
        name: what is limited (``tool:search``, ``provider:openai:gpt-4o``).
        max_concurrent: the most holders at once, or None.
        per_minute: the most acquisitions in any 60 s, or None.
    """

    def __init__(
        self, client: redis.Redis, name: str, max_concurrent: int | None, per_minute: int | None
    ) -> None:
        self._client = client
        self.name = name
        self._max_concurrent = max_concurrent or 0
        self._per_minute = per_minute or 0

    def try_acquire(self, token: str) -> float:
        """0 when ``token`` took a slot, else the seconds to wait before trying again."""
        wait_ms = run_script(
            self._client,
            "acquire_limit",
            [semaphore_key(self.name), rate_key(self.name)],
            [token, self._max_concurrent, self._per_minute, int(HOLD_S * 1000)],
            common=False,
        )
        return float(wait_ms) / 1000

    def release(self, token: str) -> None:
        if self._max_concurrent:
            self._client.zrem(semaphore_key(self.name), token)

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
