"""Members that share a task message, when the rate of a run calls for it.

Celery spends a few milliseconds of CPU on each task message (publishing it, receiving it,
its events, its result): nothing next to an agent that calls a model for seconds, most of the
cost of a member that takes milliseconds. So:

- a *lane*: a member that ran and succeeded in less than ``Settings.lane_s`` goes on, in the
  same thread, with a member its completion let in, instead of publishing it and waiting for a
  worker to take it.
  A lane hands over to the broker (publishes) once it has run for ``LANE_MAX_S``, and when the
  worker is shutting down;
- a *batch*: members admitted together (a run's first window) are published as one message of
  up to ``Settings.members_per_message`` members, each run on a thread of its own.

Either way each member is still counted in its run's chord by the result backend, under its own
task id, and keeps its lease, events and record: only Flower sees fewer task messages.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator.models import AgentOutput
from orchestrator.state.connection import refusal_message, refusal_wait_s, write_refusal
from workers.coordination import canvas
from workers.execution.liveness import new_token
from workers.execution.member import MemberRuntime, execute_member
from workers.execution.shares import run_shares
from workers.identity import node_name

log = logging.getLogger(__name__)

LANE_MAX_S = 10.0
"""How long a lane goes on before it hands over to the broker: its message is acknowledged,
and Flower sees the lane's task end."""

REDIS_OUTAGES = (RedisConnectionError, RedisTimeoutError)
MAX_OUTAGE_RETRIES = 20
RETRY_BACKOFF_MAX_S = 30
"""How a member tries again after Redis stayed away (as a task message's retry does)."""

_shutting_down = threading.Event()
T = TypeVar("T")


class MemberSlots:
    """How many members this worker process runs at once: its concurrency (``-c``), whether
    the members came a message each, in batches or in lanes. A member with a message of its
    own that finds them all taken waits for one, held under its reception lease like a
    prefetched message; a member of a batch goes back to the broker instead."""

    def __init__(self) -> None:
        self._slots: threading.BoundedSemaphore | None = None
        self._waiting = 0
        self._lock = threading.Lock()

    def size(self, concurrency: int) -> None:
        """Set when the worker starts (0: unbounded, as outside a worker)."""
        self._slots = threading.BoundedSemaphore(concurrency) if concurrency > 0 else None

    def take(self, wait: bool = True) -> bool:
        """Take a slot (waiting for one, unless not ``wait``); False when none was free."""
        if self._slots is None:
            return True
        if self._slots.acquire(blocking=False):
            return True
        if not wait:
            return False
        with self._lock:
            self._waiting += 1
        try:
            return self._slots.acquire()
        finally:
            with self._lock:
                self._waiting -= 1

    @property
    def contended(self) -> bool:
        """Whether a member of this worker waits for a slot (a lane then gives its slot up)."""
        return self._waiting > 0

    def give_back(self) -> None:
        if self._slots is not None:
            self._slots.release()


member_slots = MemberSlots()


def stop_lanes() -> None:
    """The worker is shutting down: lanes publish what they let in instead of running it."""
    _shutting_down.set()


class Lane:
    """One thread's run of members, one after another.

    Parameters:
        short_s: members that took less than this are continued in the lane (0: never).
        over_share: whether this process runs more than its share of the run (``shares.py``).
    """

    def __init__(self, short_s: float, over_share: Callable[[], bool] = lambda: False) -> None:
        self._short_s = short_s
        self._over_share = over_share
        self._started = time.monotonic()
        self.next: int | None = None

    def wants_next(self, member_s: float) -> bool:
        """Whether the lane goes on with a member let in by one that took ``member_s``."""
        return (
            member_s < self._short_s
            and time.monotonic() - self._started < LANE_MAX_S
            and not _shutting_down.is_set()
            and not member_slots.contended
            and not self._over_share()
        )


def _over_share(runtime: MemberRuntime, run_id: str) -> bool:
    try:
        cap = runtime.store.request(run_id).max_concurrent
    except (LookupError, ValueError):
        return False  # the run is gone or unreadable: its member ends as it would have
    return run_shares.over(run_id, cap, runtime.store.client)


def run_lane(
    runtime: MemberRuntime,
    run_id: str,
    first: int,
    short_s: float,
    token: str | None = None,
    count_first: bool = False,
    slot_taken: bool = False,
    previous: str | None = None,
) -> AgentOutput | None:
    """Run member ``first`` of a run (with lease token ``token`` when given, taking over from
    ``previous``, an earlier attempt of the same delivery), then the members the lane keeps, in
    one of the worker's member slots (``slot_taken``: the caller took it). Returns the output
    of ``first`` (None: see ``execute_member``); the members after it are counted in the chord
    here, and so is ``first`` when ``count_first`` (its task message is not a chord member)."""
    lane = Lane(short_s, lambda: _over_share(runtime, run_id))
    if not slot_taken:
        member_slots.take()
    try:
        with run_shares.running(run_id):
            output = execute_member(
                runtime, run_id, str(first), token=token, lane=lane, previous=previous
            )
        if count_first and output is not None:
            canvas.count_member(runtime.app, run_id, first, output)
        while lane.next is not None:
            member, lane.next = lane.next, None
            with run_shares.running(run_id):
                following = execute_member(runtime, run_id, str(member), lane=lane)
            if following is not None:
                canvas.count_member(runtime.app, run_id, member, following)
    finally:
        member_slots.give_back()
    return output


def riding_refusals(
    attempt: Callable[[str, str | None], T],
    token: str,
    previous: str | None,
    fresh_token: Callable[[], str],
    what: str,
) -> T:
    """``attempt(token, previous)``, made again while Redis refuses writes (it is full), each
    time with a fresh lease token that takes over the attempt before, as after an outage. What
    a refusal interrupts is a step before the model call (a claim), which is redone, or one
    after the output was stored (publishing, counting), which the new attempt finds done: a
    completion itself waits for room with its output (``workers/execution/member.py``)."""
    for count in itertools.count():
        try:
            return attempt(token, previous)
        except Exception as error:
            refused = write_refusal(error)
            if refused is None:
                raise
            if count == 0:
                log.warning("%s: Redis refuses writes (%s); waiting for room", what,
                            refusal_message(refused))  # fmt: skip
            time.sleep(refusal_wait_s(count))
            previous, token = token, fresh_token()
    raise AssertionError("unreachable")  # itertools.count never ends


def run_batch(runtime: MemberRuntime, run_id: str, members: list[int], short_s: float) -> None:
    """Run the members of one message at once, each on a thread of its own, in the worker's
    free member slots. Members that find no free slot go back to the broker, a message each,
    for a worker with room to take: a batch never waits in a full worker while others idle."""
    started: list[threading.Thread] = []
    spilled: list[int] = []
    try:
        for member in members:
            if not member_slots.take(wait=False):
                spilled.append(member)
                continue
            thread = threading.Thread(
                target=_lane_thread,
                args=(runtime, run_id, member, short_s),
                name=f"ao-member-{run_id}-{member}",
                daemon=True,
            )
            thread.start()
            started.append(thread)
        if spilled:
            _hand_back(runtime, run_id, spilled)
    finally:
        for thread in started:
            thread.join()


def _hand_back(runtime: MemberRuntime, run_id: str, members: list[int]) -> None:
    """Publish ``members`` again, a message each. They are first put back under an admission
    lease of this worker that expires (``RunStore.hand_back``): should the publish fail, the
    watchdog publishes them when it expires; once sent, they are confirmed as queued. (A member
    already claimed meanwhile is not handed back: its execution has it.) With Redis out of
    reach they are published all the same: their state says a message of theirs waits, and a
    second message of a member is dropped by its claim."""
    for member in members:
        runtime.keeper.forget_reception(run_id, str(member))
    store, names = runtime.store, [str(member) for member in members]
    try:
        handed, leased = store.hand_back(run_id, node_name(), names), True
    except REDIS_OUTAGES as outage:
        log.warning("run %s: Redis unreachable (%s); members %s published as queued", run_id,
                    outage, names)  # fmt: skip
        handed, leased = names, False
    try:
        canvas.publish_members(runtime.app, run_id, [int(member) for member in handed])
    except Exception as error:
        log.warning(
            "run %s: members %s not handed back (%s); the watchdog publishes them when their"
            " lease expires",
            run_id,
            handed,
            error,
        )
        return
    if leased:
        # Unconfirmed, their lease expires and the watchdog publishes them again: one runs.
        with contextlib.suppress(*REDIS_OUTAGES):
            store.confirm_published(run_id, node_name(), handed)


def _lane_thread(runtime: MemberRuntime, run_id: str, member: int, short_s: float) -> None:
    """A batch member's lane. Should Redis stay away longer than a command waits for it, the
    member is tried again once it is back, by a new attempt that takes over the one before:
    the batch's message is its only message, and a member whose claim never reached Redis
    holds no lease that could expire."""
    token, previous, slot_taken = new_token(runtime.store.client), None, True

    def attempt(attempt_token: str, attempt_previous: str | None) -> None:
        nonlocal token, slot_taken
        taken, slot_taken, token = slot_taken, False, attempt_token  # run_lane gives it back
        run_lane(runtime, run_id, member, short_s, token, True, taken, attempt_previous)

    for retry in range(MAX_OUTAGE_RETRIES + 1):
        try:
            riding_refusals(
                attempt,
                token,
                previous,
                lambda: new_token(runtime.store.client),
                f"run {run_id} member {member}",
            )
            return
        except REDIS_OUTAGES as outage:
            log.warning(
                "run %s member %s: Redis unreachable (%s); trying again", run_id, member, outage
            )
            time.sleep(min(2**retry, RETRY_BACKOFF_MAX_S))
        except Exception:  # a bug: the member's lease expires and it runs again elsewhere
            log.exception("run %s member %s failed outside its agent", run_id, member)
            return
        previous, token = token, new_token(runtime.store.client)
    log.error("run %s member %s: Redis stayed unreachable; left to the watchdog", run_id, member)
