"""What one run record may cost a learner, and the check at the door.

A record is data from anywhere (a worker, ``Client.record_run``, ``orchestrator learn``), and
a learner's plan is read by every later run of its agent, so each is bounded:

- ``MAX_CALLS_PER_RECORD`` calls in a record (model and tool calls together). An agent run of
  ten turns makes tens of calls; a record over the limit is set aside before any learner
  reads it.
- ``MAX_GROUP_CALLS`` calls in one learned group: a cohort of more calls running at once is
  not learned (a plan cannot schedule more than it would run together anyway), which keeps
  the tool learner's work per record linear in its calls.
- ``MAX_GROUPS_PER_PLAN`` groups and ``MAX_PLAN_BYTES`` of JSON in an agent's tool plan: a
  record whose own cohorts would take an empty plan past either is set aside; a plan full from
  its history drops only the new cohorts that do not fit, and the record is otherwise learned
  (``learners.ingest``). ``schedule`` agents check their calls against the plan every turn,
  and every record of the agent reads and copies it.

A record a learner dies on (its batch is delivered again) is set aside alone the next time
(``learners.redelivery``).

A record set aside is counted with the learners' rejected records (``PlanStore.rejected``:
``ao:learner:{learner}:rejected`` and the last reason) and logged by the learner; it is
learned by no learner, and the other records of its batch are learned as usual.
"""

from __future__ import annotations

from orchestrator.models import RunRecord

MAX_CALLS_PER_RECORD = 10_000
MAX_GROUP_CALLS = 32
MAX_GROUPS_PER_PLAN = 256
MAX_PLAN_BYTES = 256 * 1024


def record_over_limits(record: RunRecord) -> str | None:
    """Why ``record`` is over the limits a learner takes, or None when it is within them."""
    if len(record.calls) > MAX_CALLS_PER_RECORD:
        return (
            f"calls: {len(record.calls):,} calls, more than the {MAX_CALLS_PER_RECORD:,} a "
            "record may hold"
        )
    return None
