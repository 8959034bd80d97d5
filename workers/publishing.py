"""Publishing a run's admitted members: send their messages, then confirm it in the run.

An admitted member holds a lease in its admitter's name until the admitter confirms that its
message was sent; a publish lost with the process, with a reply or with the broker is thus
redone by the watchdog when that lease expires, and a confirmed member never expires while it
waits in the queue, however long the queue.
"""

from __future__ import annotations

from celery import Celery

from orchestrator.keys import FINAL_MEMBER
from orchestrator.run_store import RunStore
from workers import canvas
from workers.node import node_name


def publish(app: Celery, store: RunStore, run_id: str, members: list[str]) -> None:
    """Publish ``members`` (item indices, or ``final``) of the run, then confirm them."""
    if not members:
        return
    indices = [int(member) for member in members if member != FINAL_MEMBER]
    canvas.publish_members(app, run_id, indices)
    if FINAL_MEMBER in members:
        canvas.publish_final(app, run_id)
    store.confirm_published(run_id, node_name(), members)
