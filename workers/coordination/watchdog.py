"""The watchdog: a daemon thread in every worker that sweeps the active runs.

It republishes members whose lease expired (their worker died) long before the broker's
visibility timeout would, applies run deadlines, and ends the members of a cancelled run that
will never run. Each pass claims the runs whose sweep is due (``claim_sweeps.lua``), so each
active run is swept by one worker per interval, whatever the number of workers; every step of a
sweep is an atomic script, so watchdogs on many workers never collide. It also keeps the worker
present in ``ao:workers``, with the tools it serves (``orchestrator.state.presence``), and the
limits of the concurrency groups it declares (``orchestrator.state.groups``).
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from celery import Celery

from orchestrator.state import groups, presence
from orchestrator.state.connection import refusal_message, refusal_wait_s, write_refusal
from orchestrator.state.store import RunStore
from workers.broker.queues import declare_queues
from workers.broker.server_change import requeue_after_server_change, server_changed
from workers.coordination.steps import sweep_run
from workers.tools.registry import ToolRegistry

log = logging.getLogger(__name__)

BATCH = 50
"""How many due runs one claim takes; a pass claims again while its claims come full."""


class Watchdog:
    """Sweeps the due runs every ``interval_s`` seconds until stopped.

    Parameters:
        app: the Celery app (to publish members again).
        store: the run store.
        interval_s: the sweep interval: each active run is swept about once per interval, by
            whichever watchdog claims it.
        tools: the tools this worker serves, published while it is present.
        batch: how many due runs one claim takes.
        served: the names this worker serves (``strategies``, ``endpoints``).
        group_limits: the concurrency groups this worker declares (name -> limit), recorded
            at every pass.
    """

    def __init__(
        self,
        app: Celery,
        store: RunStore,
        interval_s: float,
        tools: ToolRegistry | None = None,
        batch: int = BATCH,
        served: dict[str, list[str]] | None = None,
        group_limits: dict[str, int] | None = None,
    ) -> None:
        self._app = app
        self._store = store
        self._interval_s = interval_s
        self._tools = tools
        self._served = served or {}
        self._group_limits = group_limits or {}
        self._batch = batch
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._node = ""
        self._published = -1  # the tools' revision last published

    @property
    def presence_ms(self) -> int:
        """How long the worker stays listed after its last pass."""
        return max(int(self._interval_s * 3000), 2000)

    def start(self, node: str) -> None:
        """Publish the worker's tools, then its presence under ``node`` (its node name,
        ``workers/identity.py``), and start sweeping."""
        if self._thread is not None:
            return
        self._node = node
        self._publish(self._store.client, self.presence_ms)
        groups.withdraw_undeclared(self._store.client, node, self._group_limits)
        self.announce()
        self._thread = threading.Thread(target=self._loop, name="ao-watchdog", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10) -> None:
        """Stop sweeping (waiting up to ``timeout_s`` for a pass under way) and leave the live
        workers at once."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        if self._node:
            presence.leave(self._store.client, self._node)
            groups.leave(self._store.client, self._node, self._group_limits)

    def announce(self) -> None:
        """Push this worker's presence on, and its tools key with it. A tools key that is gone
        means Redis lost this worker's keys (a flush, a restart that kept nothing, a failover to
        a replica that had not caught up): the tools are written again, the queues declared
        again, lest the broker drop messages, and the queued members published again. The
        group limits are recorded again at every pass: another worker drops the declarations
        of workers it finds absent, this one's included should its presence have lapsed."""
        client, ttl_ms = self._store.client, self.presence_ms
        present = presence.refresh(client, self._node, ttl_ms)
        if present and self._tools is not None and self._tools.revision != self._published:
            self._publish(client, ttl_ms)  # an MCP server went up or down
        if not present and self._tools is not None:
            self._publish(client, ttl_ms)
            declare_queues(self._app)
            # Until then the broker dropped what was sent to the queues it had forgotten (a
            # Redis that lost its keys keeps no bindings): members published meanwhile wait as
            # queued with no message. Each queued member is published again; a second message
            # of one whose message survived is dropped by its claim.
            requeue_after_server_change(self._app, self._store)
        groups.declare(client, self._node, self._group_limits, ttl_ms)

    def _publish(self, client: redis.Redis, ttl_ms: int) -> None:
        """Publish what this worker serves: its tools, and its strategies and endpoints."""
        if self._tools is not None:
            self._published = self._tools.revision
            self._tools.publish(client, self._node, ttl_ms)
        presence.publish_names(client, self._node, self._served, ttl_ms)

    def sweep_once(self) -> int:
        """One pass: announce the worker, then claim due runs and sweep them, again while a
        claim comes full. Returns how many runs it swept."""
        self.announce()
        if server_changed(self._store.client):
            requeue_after_server_change(self._app, self._store)
        announced = time.monotonic()
        swept = 0
        while not self._stop.is_set():
            due = self._store.claim_sweeps(self._batch, self._interval_s)
            for run_id in due:
                if time.monotonic() - announced > self._interval_s:
                    # A long pass (a big run ending in bulk) must not make this worker look
                    # gone: its presence lasts only a few intervals.
                    self.announce()
                    announced = time.monotonic()
                try:
                    sweep_run(self._app, self._store, run_id)
                except Exception:  # one broken run must not stop the watchdog for the others
                    log.exception("watchdog failed on run %s", run_id)
            swept += len(due)
            if len(due) < self._batch:
                break
        return swept

    def _loop(self) -> None:
        refusals = 0  # passes refused in a row: a full Redis refuses every one until it has room
        while True:
            try:
                self.sweep_once()
            except Exception as error:
                refused = write_refusal(error)
                if refused is None:
                    log.exception("watchdog pass failed")
                elif not refusals:  # said once per outage, not once per pass
                    log.warning("watchdog pass skipped: Redis refuses writes (%s); passes wait"
                                " until it has room", refusal_message(refused))  # fmt: skip
                refusals = refusals + 1 if refused is not None else 0
            else:
                if refusals:
                    log.info("watchdog: Redis has room again after %d skipped passes", refusals)
                refusals = 0
            self._wake.wait(self._until_next_pass(refusals))
            self._wake.clear()
            if self._stop.is_set():
                return

    def wake(self) -> None:
        """Work out the next pass now (a run was admitted whose sweep may be due soon)."""
        self._wake.set()

    def _until_next_pass(self, refusals: int = 0) -> float:
        """The interval, or less when a run's sweep (its deadline, say) is due sooner; after
        ``refusals`` passes refused in a row, at least the interval, longer as they go on (a
        sweep due now stays due: it must not make the passes spin)."""
        if refusals:
            return max(self._interval_s, refusal_wait_s(refusals))
        try:
            due_in = self._store.next_sweep_in_s()
        except Exception:  # Redis unreachable: the next pass will say so
            return self._interval_s
        if due_in is None:
            return self._interval_s
        return min(self._interval_s, max(due_in, 0.01))
