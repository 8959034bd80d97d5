"""Run state in Redis: creation, the admission window, leases, completion, cancel, final result.

Every state change is one Lua script (``lua/``), so coordinators and members on any number of
workers can race on the same run without over-admitting, double counting or losing an output.
``RunStore`` is one class made of its parts, one module each:

- ``runs.py``: a run's creation, discard, trace, events, cancel and end (``finalize``);
- ``reads.py``: what a run holds (request, status, outputs, messages, records) and the wait
  for its end;
- ``members.py``: a member's claim, lease renewals, checkpoints, completion, bulk ending, and
  the partial reducers of a tree reduce;
- ``admission.py``: a run's first window, the final agent's gate, admission leases;
- ``sweeps.py``: the runs due for a sweep, a run's sweep, its group's repair;
- ``run_scripts.py``: how a run's script is called (with its group's keys, retried while the
  group's rotation changes), the base of the parts;
- ``replies.py``: the scripts' replies and the answers they are decoded into.
"""

from __future__ import annotations

from orchestrator.state.store.admission import AdmissionSteps
from orchestrator.state.store.members import MemberLifecycle
from orchestrator.state.store.reads import OUTPUT_PAGE, RunReads
from orchestrator.state.store.reads import _cached_request as _cached_request  # for tests
from orchestrator.state.store.replies import (
    Admission,
    Claim,
    Completion,
    PartialAdmission,
    Renewal,
    Sweep,
)
from orchestrator.state.store.runs import RunLifecycle
from orchestrator.state.store.sweeps import Sweeps


class RunStore(RunLifecycle, RunReads, MemberLifecycle, AdmissionSteps, Sweeps):
    """Reads and changes runs in Redis.

    Parameters:
        client: a redis-py client of the state Redis.
        settings: lease length and event stream bound.
    """


__all__ = [
    "OUTPUT_PAGE",
    "Admission",
    "Claim",
    "Completion",
    "PartialAdmission",
    "Renewal",
    "RunStore",
    "Sweep",
]
