"""A cancellation token shared by an agent run and the threads that may cancel it."""

from __future__ import annotations

import threading


class Cancelled(Exception):
    """Raised inside an agent run when its token was cancelled."""


class CancelToken:
    """Set once with a reason; model calls wait on it so a cancel interrupts their latency."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or raise ``Cancelled`` as soon as the token is cancelled."""
        if self._event.wait(seconds) or self.cancelled:
            raise Cancelled(self.reason)

    def check(self) -> None:
        """Raise ``Cancelled`` if the token was cancelled."""
        if self.cancelled:
            raise Cancelled(self.reason)
