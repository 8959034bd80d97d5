"""The watchdog: a daemon thread in every worker that sweeps the active runs.

It republishes members whose lease expired (their worker died) long before the broker's
visibility timeout would, applies run deadlines, and ends the members of a cancelled run that
will never run. Every step is an atomic script, so watchdogs on many workers never collide.
It also marks the worker present in Redis (``ao:worker:{hostname}``).
"""

from __future__ import annotations

import logging
import threading

from celery import Celery

from orchestrator.keys import worker_key
from orchestrator.run_store import RunStore
from workers.coordinator import sweep_run

log = logging.getLogger(__name__)


class Watchdog:
    """Sweeps every ``interval_s`` seconds until stopped.

    Parameters:
        app: the Celery app (to publish members again).
        store: the run store.
        interval_s: the sweep interval.
    """

    def __init__(self, app: Celery, store: RunStore, interval_s: float) -> None:
        self._app = app
        self._store = store
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._hostname = ""

    def start(self, hostname: str) -> None:
        if self._thread is not None:
            return
        self._hostname = hostname
        self._thread = threading.Thread(target=self._loop, name="ao-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._hostname:
            self._store.client.delete(worker_key(self._hostname))

    def sweep_once(self) -> None:
        """One pass over every active run."""
        presence_ttl = max(int(self._interval_s * 3), 2)
        self._store.client.set(worker_key(self._hostname), "1", ex=presence_ttl)
        for run_id in self._store.active_runs():
            try:
                sweep_run(self._app, self._store, run_id)
            except Exception:  # one broken run must not stop the watchdog for the others
                log.exception("watchdog failed on run %s", run_id)

    def _loop(self) -> None:
        while True:
            try:
                self.sweep_once()
            except Exception:
                log.exception("watchdog pass failed")
            if self._stop.wait(self._interval_s):
                return
