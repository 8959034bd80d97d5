"""The watchdog's side of the runs: which runs are due for a sweep, the sweep of one run
(deadline, expired leases, what a cancel abandons, a lost step), and the repair of a run's
concurrency group."""

from __future__ import annotations

from typing import cast

from orchestrator.state.keys import ACTIVE_RUNS, CANCELS, run_keys
from orchestrator.state.scripts import run_script
from orchestrator.state.store import replies
from orchestrator.state.store.replies import Admission, Sweep
from orchestrator.state.store.run_scripts import RunScripts


class Sweeps(RunScripts):
    """Finds the runs due for a sweep and sweeps them."""

    def sweep(self, run_id: str, node: str) -> Sweep:
        """Apply the deadline, take over expired leases and end what a cancel abandons (see
        ``sweep_run.lua``); worker ``node`` publishes what is handed back."""
        args = [self._lease_ms, node, CANCELS, self._sweep_ms]
        found, sweep_at = replies.sweep(
            run_script(self.client, "sweep_run", run_keys(run_id).all, args)
        )
        if sweep_at is not None:
            # Its deadline comes before its next sweep: it is swept then, so that it ends on time.
            self.client.zadd(ACTIVE_RUNS, {run_id: sweep_at}, xx=True, lt=True)
        return found

    def repair_group(self, run_id: str, node: str) -> Admission:
        """The watchdog's repair of the run's concurrency group, at most once per lease across
        the group's runs: slots left by members of a deleted or expired run are freed and the
        group's free slots filled, to be published by worker ``node`` (see
        ``sweep_group.lua``)."""
        return replies.repaired(self._run(run_id, "sweep_group", node, self._lease_ms))

    def active_runs(self) -> list[str]:
        return replies.texts(cast(list[bytes], self.client.zrange(ACTIVE_RUNS, 0, -1)))

    def claim_sweeps(self, limit: int, interval_s: float) -> list[str]:
        """Take up to ``limit`` runs whose sweep is due, their next sweep pushed ``interval_s``
        on (see ``claim_sweeps.lua``): no other watchdog takes them within the interval."""
        interval_ms = max(int(interval_s * 1000), 1)
        due = run_script(self.client, "claim_sweeps", [ACTIVE_RUNS], [limit, interval_ms], False)
        return replies.texts(due)

    def next_sweep_in_s(self) -> float | None:
        """Seconds until the earliest sweep of any active run is due (0 when one is due now),
        or None when no run is active."""
        wait_ms = run_script(self.client, "next_sweep", [ACTIVE_RUNS], [], common=False)
        return None if int(wait_ms) < 0 else int(wait_ms) / 1000

    def forget_active(self, run_id: str) -> None:
        self.client.zrem(ACTIVE_RUNS, run_id)
