"""A cancellation token shared by an agent run and the threads that may stop it.

A token is stopped once, with a reason and the outcome the run ends with: ``cancelled`` for a
cancel or a deadline, ``error`` for a time limit or a lost lease. Code that blocks outside
Python (an HTTP call in flight) registers a callback with ``on_cancel`` to be interrupted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Literal

StopOutcome = Literal["cancelled", "error"]


class Cancelled(Exception):
    """Raised inside an agent run when its token was stopped."""


class CancelToken:
    """Set once with a reason; model calls wait on it so a stop interrupts their latency."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.reason = ""
        self.outcome: StopOutcome = "cancelled"

    def cancel(self, reason: str, outcome: StopOutcome = "cancelled") -> None:
        """Stop the run with ``reason``; the first stop wins. Registered callbacks run here,
        in the caller's thread."""
        with self._lock:
            if self._event.is_set():
                return
            self.reason, self.outcome = reason, outcome
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when the token is stopped (at once if it already is); returns a
        function that unregisters it."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return lambda: self._forget(callback)
        callback()
        return lambda: None

    def _forget(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or raise ``Cancelled`` as soon as the token is stopped."""
        if self._event.wait(seconds) or self.cancelled:
            raise Cancelled(self.reason)

    def check(self) -> None:
        """Raise ``Cancelled`` if the token was stopped."""
        if self.cancelled:
            raise Cancelled(self.reason)
