"""After the Redis server changed (a Sentinel failover, a restart), publish again the members
that wait in the queue.

Replication to a replica is asynchronous, so a failover may lose the old primary's last
writes; a restart with ``appendfsync everysec`` may lose its last second. What is lost is
always a suffix of what the server acknowledged, and every step of a run is written after the
step before it, so almost every loss is redone by the mechanisms that redo a dead process's
work: a lost completion leaves its member under the executing worker's lease, which expires;
a lost admission or publish leaves the admitter's lease, which expires; a lost chord count or
body is found by the sweep ('regate'). One case is not: a member's message taken from the queue
just before the cut, whose reception was lost with it. The run then says the member waits in
the queue, where it no longer is, and a queued member has no lease to expire. So the first
watchdog that notices a new server hands every queued member of every active run to its worker
to publish again; a member whose message survived gets a second one, which its claim drops.

A server is told by its ``run_id`` (``INFO server``), which is new for every process: a
promoted replica has its own. ``ao:server`` remembers the last one seen; swapping it
(``SET ... GET``) is atomic, so one watchdog acts on each change.
"""

from __future__ import annotations

import logging

import redis
from celery import Celery

from orchestrator.state.store import RunStore
from workers.coordination.publishing import publish
from workers.identity import node_name

log = logging.getLogger(__name__)

SERVER_KEY = "ao:server"


def server_changed(client: redis.Redis) -> bool:
    """True for the one caller that first sees the server answering ``client`` differ from
    the last one recorded (or none recorded: a new or emptied Redis)."""
    info = client.info("server")
    run_id = info.get("run_id") if isinstance(info, dict) else None
    if not isinstance(run_id, str):  # not one server (a cluster client answers per node)
        return False
    previous = client.set(SERVER_KEY, run_id, get=True)
    if isinstance(previous, bytes):
        previous = previous.decode()
    return previous != run_id


def requeue_after_server_change(app: Celery, store: RunStore) -> int:
    """Publish again every queued member of every active run; returns how many."""
    try:
        return _requeue_all(app, store)
    except Exception:
        # Let the next pass (of any worker) do it again.
        store.client.delete(SERVER_KEY)
        raise


def _requeue_all(app: Celery, store: RunStore) -> int:
    count = 0
    for run_id in store.active_runs():
        try:
            members = store.requeue_queued(run_id, node_name())
            publish(app, store, run_id, members)
        except redis.ConnectionError:
            raise  # the server went away again: the next pass finds it changed once more
        except Exception:  # one broken run must not keep the others' members lost
            log.exception("could not publish the queued members of run %s again", run_id)
            continue
        count += len(members)
    if count:
        log.warning("the Redis server changed: %d queued member(s) published again", count)
    return count
