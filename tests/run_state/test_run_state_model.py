"""A model-based test of the run state: a hypothesis state machine drives the real Lua scripts
(``RunStore``, ``RunBudget``, ``PlanStore``, ``PlanCache``) on a private redis-server, the worker
side emulated in ``tests/run_state/run_state_model.py``, through random interleavings of admission,
publishing, claims, renewals, reservations, settles, completions, takeovers (by a claim naming a
dead holder, or after a lease passed), hung and retried executions, sweeps, cancels, deadlines,
group limit changes, batches handed back, unreadable requests, plan updates and resets, and lost
replies (a script that ran, whose reply never came). Several runs, some in one group.

The contract, checked after every step:

- a run never has more than its ``max_concurrent`` members in flight (in its leases), and a
  concurrency group's members in flight grow only while fewer than its limit; a member holds a
  group slot exactly while it is in flight;
- a run's ``spent + reserved`` never passes its ``max_tokens``; every call whose reservation was
  granted is counted exactly once: by the usage its settle reported, or at its bound (so
  ``spent + reserved`` is at least the sum of those and at most the sum of the bounds, and
  ``spent`` at least what every settle reported); a settle retried after its reply was lost
  changes nothing; once a run ended nothing of it stays reserved;
- a member's output is stored once and never overwritten; a member waiting in the queue of a
  running run has a message there (every admitted member is published or leased);
- a plan's version only grows (a reset moves it on), and a worker's plan cache whose entries
  are due for a check returns the plan as it is now, never one from before a reset.

And once steps stop being lost and processes stop dying, every run ends within
``LIVENESS_ROUNDS`` rounds of deliveries and sweeps, with nothing reserved.

``ORCHESTRATOR_MODEL_EXAMPLES`` sets how many examples run (``ORCHESTRATOR_MODEL_STEPS`` the
steps of each): e.g. ``ORCHESTRATOR_MODEL_EXAMPLES=2000`` for a long search.
"""

from __future__ import annotations

import os
import sys
from typing import cast

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine as Machine
from hypothesis.stateful import invariant, precondition, rule, run_state_machine_as_test

from orchestrator.local import LocalRedis
from orchestrator.models import Budget
from orchestrator.models.requests import MapReduceRequest
from orchestrator.plans import ExecutionPlan, ParallelGroup
from orchestrator.plans.store import PlanStore
from orchestrator.state import groups
from orchestrator.state.budget import RunBudget
from orchestrator.state.keys import GroupKeys, RunKeys, new_run_id
from tests.helpers import items, scripted
from tests.run_state.run_state_model import FINAL, LIVE, QUEUED, Execution, Workers
from workers.agent.plan_cache import PlanCache

EXAMPLES = int(os.environ.get("ORCHESTRATOR_MODEL_EXAMPLES", "50"))
STEPS = int(os.environ.get("ORCHESTRATOR_MODEL_STEPS", "40"))
LIVENESS_ROUNDS = 50
GROUP = "model-group"
AGENT = "model-agent"
picks = st.integers(0, 1 << 16)
lost = st.sampled_from([False, False, True])
WORLD = ["hand back", "cancel", "deadline", "unreadable", "limit", "learn", "reset", "read"]
TROUBLE = ["renew", "hang", "retry", "die", "die, a lease passes", "time limit"]


class RunStateModel(Machine):
    def __init__(self, client: redis.Redis, url: str) -> None:
        super().__init__()
        client.flushall()
        self.client = client
        self.workers = Workers(client, url)
        self.runs: list[str] = []
        self.caps: dict[str, tuple[int, int | None, bool]] = {}
        self.agents: dict[str, int | None] = {}
        self.outputs: dict[str, dict[bytes, bytes]] = {}
        self.limits = {"host-a": 2}
        groups.declare(client, "host-a", {GROUP: 2}, 3_600_000)
        self.slots = 0
        self.plans = PlanStore(client)
        self.cache: PlanCache[ExecutionPlan] = PlanCache(self.plans, max_age_s=0.0)
        self.version = 0

    @precondition(lambda self: len(self.runs) < 4)
    @rule(
        count=st.integers(1, 5),
        cap=st.integers(1, 3),
        tokens=st.sampled_from([None, 300, 2000]),
        grouped=st.booleans(),
        function=st.booleans(),
        lost=lost,
    )
    def admit(
        self, count: int, cap: int, tokens: int | None, grouped: bool, function: bool, lost: bool
    ) -> None:
        run = new_run_id(GROUP if grouped else None)
        reducer = None if function else scripted("reducer", max_output_tokens=50)
        request = MapReduceRequest(
            task="model", mapper=scripted("mapper", max_output_tokens=50), reducer=reducer,
            reducer_function="total" if function else None, item_count=count,
            max_concurrent=cap, budget=Budget(max_tokens=tokens), group=GROUP if grouped else None,
        )  # fmt: skip
        self.workers.live.create_run(run, request, items(count))
        self.runs.append(run)
        self.caps[run] = (cap, tokens, grouped)
        self.agents[run] = count if function else None
        if not (lost and count % 2):  # else its admission message is lost: it stays pending
            self.workers.admit(run, lost)

    def run(self, pick: int) -> str:
        return self.runs[pick % len(self.runs)]

    @precondition(lambda self: self.runs)
    @rule(pick=picks, lost=lost)
    def sweep(self, pick: int, lost: bool) -> None:
        self.workers.sweep(self.run(pick), lost)

    @precondition(lambda self: self.runs)
    @rule(what=st.sampled_from(WORLD), pick=picks, lost=lost)
    def world(self, what: str, pick: int, lost: bool) -> None:
        """A batch hands a run's members back; a run is cancelled, its deadline passes, or a
        client of another version rewrites its request; a group limit or a plan changes."""
        run, live = self.run(pick), self.workers.live
        if what == "hand back":
            self.workers.hand_back(run, pick % 2 == 1, lost)
        elif what == "cancel":
            self.workers.store(lost).request_cancel(run, "stop")
        elif what == "deadline" and self.workers.is_running(run):
            self.client.hset(RunKeys(run).run, "deadline_ms", live.now_ms() - 1)
        elif what == "unreadable":
            self.workers.make_unreadable(run)
        elif what == "limit":
            host = ["host-a", "host-b"][pick % 2]
            self.limits[host] = 1 + pick % 3
            groups.declare(self.client, host, {GROUP: self.limits[host]}, 3_600_000)
        else:
            self.plan(what, pick % 4)

    def plan(self, what: str, tool: int) -> None:
        """A learner changes the plan, an operator resets it, a worker reads it (cached)."""
        if what == "learn":
            learned = {"parallel_groups": [ParallelGroup.of([f"tool-{tool}", "search"])]}
            self.plans.update(AGENT, lambda plan: plan.model_copy(update=learned))
        elif what == "reset":
            self.plans.reset(AGENT)
        else:
            cached, stored = self.cache.get(AGENT), self.plans.get(AGENT)
            seen = [cached.parallel_groups, cached.version] if cached else None
            now = [stored.parallel_groups, stored.version] if stored else None
            assert seen == now, f"the plan cache kept {seen}, the plan is {now}"

    @precondition(lambda self: self.workers.broker)
    @rule(pick=picks, lost=lost)
    def claim(self, pick: int, lost: bool) -> None:
        """A message is delivered: its execution claims the member."""
        self.workers.deliver(pick % len(self.workers.broker), lost)

    def execution(self, pick: int) -> Execution:
        return self.workers.running[pick % len(self.workers.running)]

    @precondition(lambda self: self.workers.running)
    @rule(pick=picks, bound=st.sampled_from([50, 150, 400]), lost=lost)
    def reserve(self, pick: int, bound: int, lost: bool) -> None:
        self.workers.reserve(self.execution(pick), bound, lost)

    @precondition(lambda self: any(ex.calls for ex in self.workers.running))
    @rule(pick=picks, quarters=st.integers(0, 4), lost=lost)
    def settle(self, pick: int, quarters: int, lost: bool) -> None:
        calling = [ex for ex in self.workers.running if ex.calls]
        ex = calling[pick % len(calling)]
        call = ex.calls[pick % len(ex.calls)]
        budget = RunBudget(self.client, call.run)
        again, before = call.usage is not None, budget.ledger()
        self.workers.settle(ex, call, call.bound * quarters // 4, lost)
        if again:
            assert budget.ledger() == before, f"a settle retried ({call.call_id}) counted again"

    @precondition(lambda self: self.workers.running)
    @rule(pick=picks, failed=st.booleans(), lost=lost)
    def complete(self, pick: int, failed: bool, lost: bool) -> None:
        self.workers.complete(self.execution(pick), "error" if failed else "ok", lost)

    @precondition(lambda self: self.workers.running)
    @rule(what=st.sampled_from(TROUBLE), pick=picks)
    def trouble(self, what: str, pick: int) -> None:
        """An execution renews its lease, hangs for a lease, dies (a lease passing or not), has
        its delivery retried after an outage (taking its attempt over), or runs out of time."""
        ex = self.execution(pick)
        if what == "renew":
            self.workers.live.renew([(ex.run, ex.member, ex.token)])
        elif what == "hang":
            self.workers.hang(ex)
        elif what == "retry":
            self.workers.retry(ex)
        elif what == "time limit":  # the member's time limit passes
            self.client.hset(RunKeys(ex.run).deadlines, ex.member, self.workers.live.now_ms() - 1)
        else:
            self.workers.kill(ex, lapse=what == "die, a lease passes")

    @invariant()
    def contract_holds(self) -> None:
        now = self.workers.live.now_ms()
        with self.client.pipeline(transaction=False) as pipe:
            for keys in map(RunKeys, self.runs):
                pipe.hgetall(keys.budget)
                pipe.zrange(keys.leases, 0, -1, withscores=True)
                pipe.hgetall(keys.outputs)
                pipe.hmget(keys.run, "state", "cancel")
                pipe.hgetall(keys.holders)
            pipe.smembers(GroupKeys(GROUP).inflight)
            replies = pipe.execute()
        in_group: set[bytes] = set()
        for index, run in enumerate(self.runs):
            ledger, leases, outputs, (state, cancel), holders = replies[5 * index : 5 * index + 5]
            cap, _, grouped = self.caps[run]
            assert len(leases) <= cap, f"run {run}: {len(leases)} in flight, cap {cap}"
            members = {m.decode(): score for m, score in leases}
            in_group |= {f"{run}:{m}".encode() for m in members if grouped and m != FINAL}
            self.check_budget(run, ledger, state.decode() not in LIVE)
            most = self.agents[run]  # a reducer function is no agent: only the mappers count
            assert most is None or int(ledger[b"agents"]) <= most, f"run {run}: agents {ledger}"
            kept = self.outputs.setdefault(run, {})
            for member, output in outputs.items():
                assert kept.setdefault(member, output) == output, f"{run}/{member} overwritten"
            if state == b"running" and not cancel and self.workers.readable(run):
                queued = {m for m, score in members.items() if score == QUEUED}
                queued -= {m for r, m, _ in self.workers.broker if r == run}
                assert not queued, f"run {run}: {queued} wait in the queue with no message"
            unsent = {m for m, score in members.items() if now < score < QUEUED}
            unsent &= {m.decode() for m, holder in holders.items() if holder.startswith(b"a:")}
            assert not unsent, f"run {run}: {unsent} admitted, never published, lease unexpired"
        slots, version = replies[-1], self.plans.version(AGENT)
        assert slots == in_group, f"group slots {slots} but in flight {in_group}"
        limit = min(self.limits.values())
        assert len(slots) <= max(limit, self.slots), f"{len(slots)} in flight, limit {limit}"
        self.slots = len(slots)
        assert (version or 0) >= self.version, f"plan version {version} after {self.version}"
        self.version = version or 0

    def check_budget(self, run: str, raw: dict[bytes, bytes], ended: bool) -> None:
        most = self.caps[run][1]
        spent, reserved = int(raw[b"spent_tokens"]), int(raw[b"reserved_tokens"])
        calls = [call for call in self.workers.calls if call.run == run]
        settled = sum(call.usage for call in calls if call.usage is not None)
        least = sum(call.bound if call.usage is None else call.usage for call in calls)
        bounds = sum(call.bound for call in calls)
        where = f"run {run}: spent {spent} reserved {reserved}"
        assert most is None or spent + reserved <= most, f"{where}, max_tokens {most}"
        assert spent >= settled, f"{where}, but settles reported {settled}"
        assert least <= spent + reserved <= bounds, f"{where}: calls count {least} to {bounds}"
        assert not (ended and reserved), f"{where}, though the run ended"

    def finish(self, rounds: int) -> int:
        """No step is lost, no process dies: the leases of the dead lapse, and round after round
        every execution ends, every message is delivered, every run is swept. The rounds it took
        for every run to end (``rounds``: some never did, or two rounds changed nothing)."""
        workers, seen, live = self.workers, list[object](), self.workers.live
        for run in self.runs:
            holders = cast(dict[bytes, bytes], self.client.hgetall(RunKeys(run).holders))
            dead = [(run, m.decode(), h.decode()) for m, h in holders.items()]
            workers.lapsed.renew([lease for lease in dead if lease[2] in workers.dead])
        workers.lapse()
        for round_ in range(rounds):
            running = [run for run in self.runs if workers.is_running(run)]
            now = [(live.status(r), self.client.hgetall(RunKeys(r).holders)) for r in running]
            if not running or seen[-2:] == [now, now]:
                return round_ if not running else rounds
            seen.append(now)
            for _ in range(1000):
                for ex in list(workers.running):
                    for call in list(ex.calls):
                        workers.settle(ex, call, call.bound // 2, lost=False)
                    workers.complete(ex, "ok", lost=False)
                if not workers.broker:
                    break
                workers.deliver(0, lost=False)
            for run in filter(workers.is_running, self.runs):
                workers.sweep(run, lost=False)
        return rounds

    def teardown(self) -> None:
        if sys.exc_info()[0] is not None or not self.runs:
            return  # a step failed: that is the finding
        rounds = self.finish(LIVENESS_ROUNDS)
        self.contract_holds()
        stuck = {run: self.workers.live.status(run) for run in self.runs}
        stuck = {run: status for run, status in stuck.items() if status and status.state in LIVE}
        assert rounds < LIVENESS_ROUNDS and not stuck, f"runs never ended: {stuck}"


@pytest.mark.timeout(600 + 2 * EXAMPLES)  # shrinking a failure may take minutes
def test_the_run_state_keeps_its_contract(private_redis: LocalRedis) -> None:
    client = redis.Redis.from_url(private_redis.url)

    class OnTheServer(RunStateModel):
        def __init__(self) -> None:
            super().__init__(client, private_redis.url)

    run_state_machine_as_test(
        OnTheServer,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
