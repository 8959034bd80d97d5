"""Limits shared by every worker through Redis: calls at once, calls and tokens per minute.

Used for a tool's ``max_concurrency`` and for provider pools, so that 50 concurrent agents on
10 workers make at most N calls at a time to a rate-limited API, not a storm of 429s. A slot is
held under a lease that a thread of its holder renews, so the slot of a holder that dies (its
process killed) is free again within ``lease_s``, and a live holder keeps it however long it
holds it.

A provider pool also counts tokens (``tpm``) and can be paused for every worker (a 429 that
said when to retry): one script checks the pause, the slot, the calls and the tokens of the
window together and takes all of them or none, so a call waiting for tokens holds no slot.
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

from orchestrator.state.keys import (
    pause_key,
    rate_key,
    semaphore_key,
    token_amounts_key,
    token_window_key,
)
from orchestrator.state.scripts import run_script
from workers.execution.cancellation import CancelToken

log = logging.getLogger(__name__)

# A live holder renews its lease this many times per lease length, so that a renewal or two
# may come late (a busy process, a slow Redis) without losing the slot.
RENEWALS_PER_LEASE = 3
# How much longer than its window a call's tokens count: the time its request may take to
# reach the provider after it was reserved (the provider counts from its arrival), so that a
# call reserved as an older one leaves the window is never counted beside it by the provider.
ARRIVAL_MARGIN_S = 1.0


class NeverFits(Exception):
    """A call's tokens are more than its pool's whole tokens-per-minute limit."""


class SharedLimit:
    """A named limit; ``hold()`` waits for a slot and releases it afterwards.

    Parameters:
        client: the state Redis.
        name: what is limited (``tool:search``, ``provider:openai:gpt-4o``).
        max_concurrent: the most holders at once, or None.
        per_minute: the most acquisitions in any window (60 s), or None.
        lease_s: how long a slot outlives its holder's last renewal (``settings.lease_s``).
        tokens_per_minute: the most tokens reserved in any window (plus ``ARRIVAL_MARGIN_S``),
            or None.
        window_s: the window of ``per_minute`` and ``tokens_per_minute``.
        pausable: a provider pool, which ``hold_off`` pauses for every worker.
    """

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        max_concurrent: int | None,
        per_minute: int | None,
        lease_s: float,
        *,
        tokens_per_minute: int | None = None,
        window_s: float = 60.0,
        pausable: bool = False,
    ) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self._client = client
        self.name = name
        self._max_concurrent = max_concurrent or 0
        self._per_minute = per_minute or 0
        self._lease_ms = max(1, round(lease_s * 1000))
        self._tokens_per_minute = tokens_per_minute or 0
        self._window_ms = max(1, round(window_s * 1000))
        self._token_window_ms = self._window_ms + round(ARRIVAL_MARGIN_S * 1000)
        self._pausable = pausable
        self._renewals: dict[str, _Renewal] = {}
        self._lock = threading.Lock()

    @property
    def counts_tokens(self) -> bool:
        """Whether calls must say their tokens (``try_acquire(token, tokens)``)."""
        return self._tokens_per_minute > 0

    def try_acquire(self, token: str, tokens: int = 0) -> float:
        """0 when ``token`` took a slot (and ``tokens`` of the window), else the seconds to
        wait before trying again; ``NeverFits`` when ``tokens`` exceed the whole window. A slot
        taken is renewed by a background thread until ``release(token)``: every caller that
        gets 0 must release."""
        keys = [semaphore_key(self.name), rate_key(self.name)]
        args: list[int | str] = [token, self._max_concurrent, self._per_minute, self._lease_ms]
        if self._pausable or self._tokens_per_minute:
            keys += [token_window_key(self.name), token_amounts_key(self.name)]
            keys.append(pause_key(self.name))
            args += [self._tokens_per_minute, tokens, self._window_ms, self._token_window_ms]
        wait_ms = run_script(self._client, "acquire_limit", keys, args, common=False)
        if wait_ms < 0:
            raise NeverFits(
                f"{self.name}: a call of up to {tokens} tokens can never fit its limit of "
                f"{self._tokens_per_minute} tokens per minute"
            )
        if wait_ms == 0 and self._max_concurrent:
            with self._lock:
                if token not in self._renewals:
                    interval_s = self._lease_ms / 1000 / RENEWALS_PER_LEASE
                    self._renewals[token] = _Renewal(self, token, interval_s)
        return float(wait_ms) / 1000

    def settle(self, token: str, tokens: int) -> None:
        """The call ``token`` used ``tokens``: the window counts that instead of its bound."""
        if self._tokens_per_minute:
            keys = [token_amounts_key(self.name)]
            run_script(self._client, "settle_tokens", keys, [token, tokens], common=False)

    def restamp(self, token: str) -> None:
        """The call ``token`` is being sent: its tokens count from now."""
        if self._tokens_per_minute:
            keys = [token_window_key(self.name), token_amounts_key(self.name)]
            args = [token, self._token_window_ms + 1000]
            run_script(self._client, "restamp_tokens", keys, args, common=False)

    def hold_off(self, seconds: float) -> None:
        """Pause the limit for every worker for ``seconds`` (a longer pause is kept)."""
        ms = max(1, round(seconds * 1000))
        run_script(self._client, "pause_limit", [pause_key(self.name)], [ms], common=False)

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
    def hold(self, cancel: CancelToken | None = None, tokens: int = 0) -> Iterator[str]:
        """Wait for a slot and ``tokens`` of the window (a cancel ends the wait at once), hold
        it for the block, release it. The block gets the holder's token (for ``settle``)."""
        token = uuid4().hex
        while (wait_s := self.try_acquire(token, tokens)) > 0:
            if cancel is not None:
                cancel.sleep(self.pause(wait_s))
            else:
                time.sleep(self.pause(wait_s))
        try:
            yield token
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
