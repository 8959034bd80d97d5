"""Admission: a run's first window, the gate of its final agent, and the admission leases of
the members a worker publishes (handed back, confirmed, requeued). The window itself and the
group's round-robin are in ``lua/window.lua`` and ``lua/group.lua``; the retry of a grouped
script in ``run_scripts.py``."""

from __future__ import annotations

from orchestrator.state.store import replies
from orchestrator.state.store.replies import Admission
from orchestrator.state.store.run_scripts import RunScripts


class AdmissionSteps(RunScripts):
    """Admits a run's members and its final agent for a worker to publish."""

    def start(self, run_id: str, node: str) -> Admission:
        """Admission: the run becomes ``running`` and its first window is admitted, to be
        published by worker ``node`` (in a concurrency group: as far as the group has room,
        which may let in members of its other runs too)."""
        return replies.started(self._run(run_id, "start_run", node, self._lease_ms))

    def gate_final(
        self, run_id: str, node: str, prompt: str, agent: bool = True
    ) -> tuple[str, str]:
        """Budget-gate the run's final agent: (``admitted`` | ``denied`` | ``cancelled`` |
        ``gone``, reason); ``prompt`` is what it will be given ('' for one that builds its own,
        a map-reduce's reducer), ``node`` publishes it. ``agent=False``: the final step is a
        reducer function, no agent of the budget (only a cancel stops it)."""
        counts = "1" if agent else "0"
        reply = self._run(run_id, "gate_final", node, prompt, self._lease_ms, counts)
        return replies.verdict(reply)

    def requeue_queued(self, run_id: str, node: str) -> list[str]:
        """The run's members that wait in the queue, handed to worker ``node`` to publish
        again under an admission lease (after a change of Redis server, which may have lost
        their messages; see ``requeue_queued.lua``)."""
        return replies.texts(self._run(run_id, "requeue_queued", node, self._lease_ms))

    def hand_back(self, run_id: str, node: str, members: list[str]) -> list[str]:
        """Put ``members``, which a worker took but will not run, back under an admission
        lease of worker ``node`` that expires, before it publishes them again: should that
        publish fail, the watchdog publishes them when the lease expires. Returns the members
        to publish (those not yet claimed by an execution nor ended; see ``hand_back.lua``)."""
        return replies.texts(self._run(run_id, "hand_back", node, self._lease_ms, *members))

    def confirm_published(self, run_id: str, node: str, members: list[str]) -> None:
        """Worker ``node`` published ``members``: they wait in the queue without a lease to
        expire from now on (see ``confirm_published.lua``)."""
        self._run(run_id, "confirm_published", node, *members)
