"""Lease renewal for the members running in this worker process.

One daemon thread per process renews every lease held here in a single Redis round trip per
interval, and relays a run's cancel to its running members' tokens.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from orchestrator.run_store import RunStore
from workers.cancellation import CancelToken

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews held leases every ``interval_s`` seconds.

    Parameters:
        store: the run store.
        interval_s: the heartbeat interval (well under the lease length).
    """

    def __init__(self, store: RunStore, interval_s: float) -> None:
        self._store = store
        self._interval_s = interval_s
        self._held: dict[tuple[str, str, str], CancelToken] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def hold(self, run_id: str, member: str, token: str, cancel: CancelToken) -> Iterator[None]:
        """Keep the lease of ``member`` renewed while the block runs."""
        key = (run_id, member, token)
        with self._lock:
            self._held[key] = cancel
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="ao-lease-keeper", daemon=True
                )
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(key, None)

    def _loop(self) -> None:
        stop = threading.Event()
        while not stop.wait(self._interval_s):
            with self._lock:
                held = list(self._held.items())
            if not held:
                continue
            try:
                reasons = self._store.renew([key for key, _ in held])
            except Exception:  # Redis unreachable: keep trying, the lease may still hold
                log.exception("lease renewal failed")
                continue
            for (_, cancel), reason in zip(held, reasons, strict=True):
                if reason:
                    cancel.cancel(reason)
