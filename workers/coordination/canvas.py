"""The capped chord's Celery side, and the only module that touches canvas internals.

Every run is a real Celery chord whose chord id is the run id (Celery's API calls it the
chord's group: ``group_id``, ``group_index``, the backend's counter; "group" in this project
otherwise means a concurrency group). Member ``i`` is the task
``tasks.agents.run_member(run_id, i)`` with a fixed task id and chord index ``i``, and the body is
``tasks.coordinator.after_members(members, run_id)``. The chord size is registered in the result
backend up front; members are published later, a window at a time. A member that never runs
(skipped by the budget, cancelled) is counted by the backend directly, without a message. A
run's final agent (a reducer, a judge) is ``tasks.agents.run_final(run_id)``.

Members that share a task message (``workers/execution/lanes.py``: a batch
``tasks.agents.run_members(run_id,
indices)``, or a lane's next member) are counted one by one under their own task ids, as if each
had run as its own task; the shared message is not a chord member.

A member's chord result is a small reference (index, name, outcome): the output itself is stored
once, in the run's outputs hash, where the gate and the final result read it. The reference
reaches the body through the backend's chord counting only: members store no task result
(``ignore_result``), so a big run leaves no ``celery-task-meta-*`` key per member.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from celery import Celery, Signature
from celery.app.task import Context

from orchestrator.models import AgentOutput
from orchestrator.state.keys import batch_task_id, body_task_id, final_task_id, member_task_id

MEMBER_TASK = "tasks.agents.run_member"
BODY_TASK = "tasks.coordinator.after_members"
FINAL_TASK = "tasks.agents.run_final"
BATCH_TASK = "tasks.agents.run_members"
MEMBER_QUEUE = "agents"
"""The queue of every member's message (one each, batches, final agents)."""

log = logging.getLogger(__name__)


def member_result(index: int, output: AgentOutput) -> dict[str, Any]:
    """What a member returns to the chord (and what Flower shows as its result)."""
    return {"index": index, "name": output.name, "outcome": output.outcome}


def chord_body(app: Celery, run_id: str) -> Signature:
    """The chord body, on the coordinator queue."""
    return app.signature(
        BODY_TASK, args=(run_id,), options={"task_id": body_task_id(run_id), "queue": "coordinator"}
    )


def register_chord(app: Celery, run_id: str, size: int) -> None:
    """Tell the result backend the chord has ``size`` members (done before any is published)."""
    app.backend.set_chord_size(run_id, size)


class SentEvents:
    """The ``task-sent`` events of several task messages, sent as one event message once they
    are all published (Celery's ``task.multi`` events, which Flower reads as it reads single
    ones): a window of a thousand members then costs one event publish, not a thousand. Given
    to ``send_task`` as its ``event_dispatcher``."""

    def __init__(self, app: Celery, producer: Any, count: int) -> None:
        self._dispatcher = app.events.Dispatcher(
            channel=producer.channel,
            enabled=bool(app.conf.task_send_sent_event),
            buffer_group=["task"],
            buffer_limit=count + 1,
        )

    def publish(self, type: str, fields: dict[str, Any], producer: Any, **_: Any) -> None:
        self._dispatcher.send(type, **fields)

    def flush(self) -> None:
        """Publish the events collected; they are for monitoring: one lost is only logged."""
        try:
            self._dispatcher.flush()
        except Exception as error:
            log.warning("task-sent events not published: %s", error)
        finally:
            self._dispatcher.close()


def publish_members(app: Celery, run_id: str, indices: list[int]) -> None:
    """Publish members ``indices`` of the run's chord to the agents queue, a message each."""
    if not indices:
        return
    body, chord_id = chord_body(app, run_id), run_id
    with app.producer_or_acquire() as producer:
        several = len(indices) > 1
        events = SentEvents(app, producer, len(indices)) if several else None
        # Several messages leave together: kombu's publish batch sends them in one Redis
        # pipeline (a broker without batches publishes each at once). Should it fail, none of
        # the members is confirmed as published: the watchdog publishes them again.
        batch = producer.batch() if several else contextlib.nullcontext()
        try:
            with batch:
                for index in indices:
                    app.send_task(
                        MEMBER_TASK,
                        args=(run_id, index),
                        task_id=member_task_id(run_id, index),
                        group_id=chord_id,  # Celery's name for the chord's id
                        group_index=index,
                        chord=body,
                        queue=MEMBER_QUEUE,
                        producer=producer,
                        add_to_parent=False,
                        event_dispatcher=events,
                    )
        finally:
            if events is not None:
                events.flush()


def publish_batches(app: Celery, run_id: str, batches: list[list[int]]) -> None:
    """Publish members several to a message: each of ``batches`` is one message."""
    with app.producer_or_acquire() as producer:
        for batch in batches:
            app.send_task(
                BATCH_TASK,
                args=(run_id, batch),
                task_id=batch_task_id(run_id, batch[0]),
                queue=MEMBER_QUEUE,
                producer=producer,
                add_to_parent=False,
            )


def count_member(app: Celery, run_id: str, index: int, output: AgentOutput) -> None:
    """Count a member in the run's chord as if a task of its own had run: one that ran in a
    batch or a lane, or one ended without running (skipped, cancelled). Its reference goes to
    the body; like any member, it leaves no task result of its own (its output is in the run).

    The backend's chord counting ignores a second result for the same task and index, so a
    real execution finishing later cannot count the member twice.
    """
    chord_id = run_id
    request = Context(
        id=member_task_id(run_id, index),
        group=chord_id,  # Celery's name for the chord's id
        group_index=index,
        chord=chord_body(app, run_id),
        ignore_result=True,
        task=MEMBER_TASK,
    )
    app.backend.mark_as_done(
        member_task_id(run_id, index), member_result(index, output), request, store_result=False
    )


def publish_final(app: Celery, run_id: str) -> None:
    """Publish the final agent of a run whose gate admitted it."""
    app.send_task(
        FINAL_TASK,
        args=(run_id,),
        task_id=final_task_id(run_id),
        queue=MEMBER_QUEUE,
        add_to_parent=False,
    )
