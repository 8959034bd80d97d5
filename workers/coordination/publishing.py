"""Publishing a run's admitted members: send their messages, then confirm it in the run.

An admitted member holds a lease in its admitter's name until the admitter confirms that its
message was sent; a publish lost with the process, with a reply or with the broker is thus
redone by the watchdog when that lease expires, and a confirmed member never expires while it
waits in the queue, however long the queue.

The invariant: every admitted member is published or held under a lease that expires. Every
admission a script returns is published (``apply_admission``), and a member a worker gives back
unrun goes under an admission lease again before its publish is tried (``RunStore.hand_back``).
"""

from __future__ import annotations

from celery import Celery

from orchestrator.state.keys import FINAL_MEMBER
from orchestrator.state.store import RunStore
from workers.coordination import canvas
from workers.identity import node_name

BATCH_FROM = 32
"""Members admitted together may share messages from this many on, once their run is known to
be short: a narrower window is spread better over the workers a message each."""


def messages_for(indices: list[int], per_message: int) -> tuple[list[int], list[list[int]]]:
    """How ``indices`` admitted together travel: (members with a message each, batches of
    several members a message). A few members get a message each (each a chord member that
    Flower shows); more are spread evenly over messages of at most ``per_message``."""
    if per_message <= 1 or len(indices) < BATCH_FROM:
        return indices, []
    count = -(-len(indices) // per_message)
    size, extra = divmod(len(indices), count)
    batches, start = [], 0
    for number in range(count):
        end = start + size + (1 if number < extra else 0)
        batches.append(indices[start:end])
        start = end
    return [], batches


def publish(
    app: Celery, store: RunStore, run_id: str, members: list[str], short: bool = False
) -> None:
    """Publish ``members`` (item indices, or ``final``) of the run, then confirm them.

    Each member travels alone (a ``run_member`` task that Flower shows) unless the run is
    known to be ``short``: one of its own members just ran and succeeded within
    ``Settings.lane_s``, where a task message would cost more than the member. A run's first
    window has no such evidence (``Settings.first_window_batches`` says otherwise, for
    operators whose members all are short), so a run of members that call a model for seconds
    shows every one of them."""
    if not members:
        return
    indices = [int(member) for member in members if member != FINAL_MEMBER]
    settings = store.settings
    batched = short or settings.first_window_batches
    per_message = settings.members_per_message if batched else 1
    single, batches = messages_for(indices, per_message)
    canvas.publish_members(app, run_id, single)
    canvas.publish_batches(app, run_id, batches)
    if FINAL_MEMBER in members:
        canvas.publish_final(app, run_id)
    store.confirm_published(run_id, node_name(), members)
