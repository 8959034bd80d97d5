"""The leases held by this worker process, renewed by one heartbeat thread.

Two kinds of holds: an *execution* (a member running here, with its cancel token and time
limit) and a *reception* (a member's message this worker took but has not started, such as
a prefetched one; its lease makes the watchdog hand it to another worker if this one dies).
Every held lease is renewed in one Redis round trip per interval. The heartbeat relays a run's
cancel to its running members, stops a member that lost its lease to another execution, and
stops a member at its time limit instead of keeping it alive: past it, its lease is no longer
renewed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from orchestrator.state.store import Renewal, RunStore
from workers.execution.cancellation import Cancelled, CancelToken
from workers.identity import node_name

log = logging.getLogger(__name__)

# A reception is written only if the member has not started this long after its message came:
# a worker with a free slot starts it at once, and its claim takes the lease instead.
RECEPTION_GRACE_S = 0.05

LEASE_LOST = "lease lost: the watchdog handed this member to another execution"


@dataclass
class _Hold:
    run_id: str
    member: str
    holder: str
    since: float
    cancel: CancelToken | None = None
    deadline: float | None = None
    timeout_s: float = 0.0
    confirmed: float = field(default=0.0)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.run_id, self.member, self.holder)


class Lease:
    """An execution's hold on a member, as the agent loop sees it."""

    def __init__(self, keeper: LeaseKeeper, hold: _Hold) -> None:
        self._keeper = keeper
        self._hold = hold

    def guard(self) -> None:
        """Raise ``Cancelled`` unless the member may make another model or tool call: it was
        not stopped, and its lease is still its own. A lease not confirmed for half its length
        (the process stalled, or Redis was slow) is confirmed with Redis first."""
        self._keeper.confirm(self._hold)


class LeaseKeeper:
    """Renews held leases every ``interval_s`` seconds.

    Parameters:
        store: the run store.
        interval_s: the heartbeat interval (well under the lease length).
        lease_s: the lease length.
    """

    def __init__(self, store: RunStore, interval_s: float, lease_s: float) -> None:
        self._store = store
        self._interval_s = interval_s
        self._lease_s = lease_s
        self._holds: dict[tuple[str, str, str], _Hold] = {}
        self._receptions: dict[tuple[str, str], _Hold] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def hold(
        self,
        run_id: str,
        member: str,
        token: str,
        cancel: CancelToken,
        remaining_s: float,
        timeout_s: float,
    ) -> Iterator[Lease]:
        """Keep the lease of an execution of ``member`` renewed while the block runs, and stop
        it (``cancel``) when its run is cancelled, its lease is lost, or ``remaining_s`` of its
        time limit ``timeout_s`` pass."""
        now = time.monotonic()
        held = _Hold(
            run_id, member, token, now, cancel, now + remaining_s, timeout_s, confirmed=now
        )
        with self._lock:
            self._holds[held.key] = held
            self._receptions.pop((run_id, member), None)
        self._ensure_thread()
        self._wake.set()  # the next wait must end by this member's deadline
        try:
            yield Lease(self, held)
        finally:
            with self._lock:
                self._holds.pop(held.key, None)

    def received(self, run_id: str, member: str) -> None:
        """A message of ``member`` was taken by this worker (it may wait for a free slot)."""
        reception = _Hold(run_id, member, f"r:{node_name()}", time.monotonic())
        with self._lock:
            self._receptions[(run_id, member)] = reception
        self._ensure_thread()
        self._wake.set()

    def forget_reception(self, run_id: str, member: str) -> None:
        """The message of ``member`` was handled (run, dropped or found done)."""
        with self._lock:
            self._receptions.pop((run_id, member), None)

    def confirm(self, held: _Hold) -> None:
        """See ``Lease.guard``."""
        assert held.cancel is not None
        held.cancel.check()
        if time.monotonic() - held.confirmed > self._lease_s / 2:
            sent = time.monotonic()
            (renewal,) = self._store.renew([held.key])
            self._apply(held, renewal, sent)
            held.cancel.check()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="ao-lease-keeper", daemon=True
                )
                self._thread.start()
                threading.Thread(target=self._listen, name="ao-cancels", daemon=True).start()

    def _listen(self) -> None:
        """Stop the running members of a run as soon as its cancel is announced (the
        heartbeat relays it too, should an announcement be missed)."""
        while True:
            try:
                for run_id, reason in self._store.cancel_announcements():
                    with self._lock:
                        running = [h for h in self._holds.values() if h.run_id == run_id]
                    for held in running:
                        assert held.cancel is not None
                        held.cancel.cancel(reason)
            except Exception as outage:  # Redis unreachable: listen again once it answers
                log.warning("cancel announcements interrupted (%s); listening again", outage)
                time.sleep(1.0)

    def _due(self, now: float) -> tuple[list[_Hold], float]:
        """The holds to renew now, and how long the thread may sleep after this round. A hold
        is due once per interval (receptions once past their grace); when one is due, those
        past half an interval come along, so that holds share round trips."""
        with self._lock:
            holds = [*self._holds.values(), *self._receptions.values()]
        wait_s = self._interval_s
        live: list[_Hold] = []
        for held in holds:
            if held.cancel is not None:
                if held.cancel.cancelled:
                    continue
                if held.deadline is not None and now >= held.deadline:
                    # Past its limit a member is stopped and its lease left to expire.
                    held.cancel.cancel(f"timed out after {held.timeout_s:g} s", "error")
                    continue
                if held.deadline is not None:
                    wait_s = min(wait_s, held.deadline - now)
                next_at = held.confirmed + self._interval_s
            elif held.confirmed == 0.0:
                next_at = held.since + RECEPTION_GRACE_S
            else:
                next_at = held.confirmed + self._interval_s
            live.append(held)
            wait_s = min(wait_s, next_at - now)
        if wait_s > 0:
            return [], wait_s
        half = self._interval_s / 2
        due = [h for h in live if h.confirmed == 0.0 or now - h.confirmed >= half]
        return due, self._interval_s

    def _loop(self) -> None:
        while True:
            due, wait_s = self._due(time.monotonic())
            if due and self._renew(due):
                continue  # work out the next wait from the renewed holds
            self._wake.wait(wait_s)
            self._wake.clear()

    def _renew(self, due: list[_Hold]) -> bool:
        sent = time.monotonic()
        try:
            renewals = self._store.renew([held.key for held in due])
        except Exception:  # Redis unreachable: keep trying, the leases may still hold
            log.exception("lease renewal failed")
            return False
        for held, renewal in zip(due, renewals, strict=True):
            self._apply(held, renewal, sent)
        return True

    def _apply(self, held: _Hold, renewal: Renewal, sent: float) -> None:
        if held.cancel is None:  # a reception: once lost or started, it is no longer ours
            if renewal.status == "ok":
                held.confirmed = sent
            else:
                self.forget_reception(held.run_id, held.member)
            return
        if renewal.status == "ok":
            held.confirmed = sent
            if renewal.cancel:
                held.cancel.cancel(renewal.cancel)
        elif renewal.status == "lost":
            held.cancel.cancel(LEASE_LOST, "error")
        else:
            held.cancel.cancel("the run no longer exists")


__all__ = ["LEASE_LOST", "Cancelled", "Lease", "LeaseKeeper"]
