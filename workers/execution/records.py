"""Run records leave for the learners as each agent run ends.

A member's record is sent when its output is stored (in a batch, within ``FLUSH_S``), so that
learners learn during a long run (the cache learner plans a map-reduce's later mappers from its
first ones), not after it.
"""

from __future__ import annotations

import logging
import threading

from celery import Celery

from orchestrator.models import RunRecord

INGEST_TASK = "tasks.learner.ingest"
BATCH_RECORDS = 100
FLUSH_S = 0.1

log = logging.getLogger(__name__)


class RecordShipper:
    """Sends records to the ``learner`` queue a batch at a time, from a thread of its own.

    A task message per record would cost a zero-latency member about as much as the member
    itself; batched, a record costs an append to a list. Records leave once ``BATCH_RECORDS``
    are waiting or ``FLUSH_S`` after the first of a batch, and when the worker shuts down. A
    record is for learning: one that cannot be sent (the broker is down, or the process dies
    with it waiting) is lost, and no run waits on it.
    """

    def __init__(self, app: Celery) -> None:
        self._app = app
        self._waiting: list[dict[str, object]] = []
        self._lock = threading.Lock()
        self._pending = threading.Event()
        self._full = threading.Event()
        self._thread: threading.Thread | None = None

    def ship(self, record: RunRecord) -> None:
        """Queue ``record`` for the next batch."""
        payload = record.model_dump(mode="json")
        with self._lock:
            self._waiting.append(payload)
            first, full = len(self._waiting) == 1, len(self._waiting) >= BATCH_RECORDS
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="ao-records", daemon=True)
                self._thread.start()
        if first:
            self._pending.set()
        if full:
            self._full.set()

    def flush(self) -> None:
        """Send every waiting record now."""
        with self._lock:
            batch, self._waiting = self._waiting, []
        for start in range(0, len(batch), BATCH_RECORDS):
            self._send(batch[start : start + BATCH_RECORDS])

    def _loop(self) -> None:
        # Idle while nothing waits; a batch leaves FLUSH_S after its first record, or once full.
        while True:
            self._pending.wait()
            self._pending.clear()
            self._full.wait(FLUSH_S)
            self._full.clear()
            self.flush()

    def _send(self, batch: list[dict[str, object]]) -> None:
        try:
            self._app.send_task(INGEST_TASK, args=(batch,), queue="learner", add_to_parent=False)
        except Exception as error:
            log.warning("%d run records not sent to the learners: %s", len(batch), error)


_shippers: dict[int, RecordShipper] = {}
_shippers_lock = threading.Lock()


def shipper(app: Celery) -> RecordShipper:
    """This process's shipper for ``app``."""
    with _shippers_lock:
        return _shippers.setdefault(id(app), RecordShipper(app))


def ship_record(app: Celery, record: RunRecord) -> None:
    """Send one agent run's record to the learners, in the next batch; never raises."""
    try:
        shipper(app).ship(record)
    except Exception as error:
        log.warning(
            "run %s: record of %s not sent to the learners: %s",
            record.run_id,
            record.agent_name,
            error,
        )


def flush_records() -> None:
    """Send the records waiting in this process (the worker is shutting down)."""
    with _shippers_lock:
        shippers = list(_shippers.values())
    for each in shippers:
        each.flush()
