"""Every reservation ends exactly once, settled or charged, whatever process dies or Redis
loses: a call's execution displaced by a claim, a retried delivery, a settle lost in an outage
or a failover, a response without usage. The scripts are driven as the workers drive them,
against a Redis no worker uses; the last tests run a real worker against a local server."""

from __future__ import annotations

from uuid import uuid4

import pytest
import redis

from orchestrator import Client
from orchestrator.config.settings import Settings
from orchestrator.local import LocalRedis
from orchestrator.models import AgentOutput, AgentSpec, Budget, ModelConfig
from orchestrator.models.requests import MapReduceRequest
from orchestrator.state.budget import RunBudget
from orchestrator.state.events import AgentEnd, AgentStart
from orchestrator.state.keys import RunKeys
from orchestrator.state.store import RunStore
from tests.budget.test_budget import api_worker  # noqa: F401  (a fixture)
from tests.helpers import scripted
from tests.providers.test_providers import CHAT_ANSWER, RESPONSES_ANSWER
from tests.servers.fake_api import FakeAPI
from workers.providers.budgeted import CallBudget

START = AgentStart(run_id="r", name="m_0", index=0)


@pytest.fixture
def store(module_redis: LocalRedis) -> RunStore:
    return RunStore(redis.Redis.from_url(module_redis.url), Settings(redis_url=module_redis.url))


def running_member(store: RunStore, max_tokens: int = 10_000) -> str:
    """A one-member run under ``max_tokens`` whose member 0 was admitted and published."""
    run_id = uuid4().hex
    request = MapReduceRequest(
        task="t", mapper=scripted("m"), reducer=scripted("r"), item_count=1,
        budget=Budget(max_tokens=max_tokens),
    )  # fmt: skip
    store.create_run(run_id, request, ["0"])
    assert store.start(run_id, "node").admitted == [0]
    store.confirm_published(run_id, "node", ["0"])
    return run_id


def complete(store: RunStore, run_id: str, token: str, calls: CallBudget) -> str:
    output = AgentOutput(name="m_0")
    end = AgentEnd(run_id=run_id, name="m_0", index=0, outcome="ok")
    completion = store.complete(
        run_id, "0", output, [end], node="node", token=token, calls=calls.made
    )
    return completion.status


def test_a_claim_that_takes_over_a_dead_execution_charges_its_call_in_flight(
    store: RunStore,
) -> None:
    run_id = running_member(store)
    budget = RunBudget(store.client, run_id)
    assert store.claim(run_id, "0", "dead", 60, START).action == "run"
    dead = CallBudget(budget, "0", "dead", False)
    assert budget.reserve("0", "dead", dead.next_call_id(), 6_000, 0)[0] == "ok"
    # Its process is gone (as RabbitMQ's immediate redelivery finds): taken over at once.
    claim = store.claim(run_id, "0", "new", 60, START, gone_holder="dead")
    assert claim.action == "run" and claim.taken_over
    ledger = budget.ledger()
    assert (ledger.spent_tokens, ledger.reserved_tokens, ledger.calls) == (6_000, 0, 1)
    # The new execution's calls fit beside what the dead one may have been billed.
    new = CallBudget(budget, "0", "new", False)
    call = new.next_call_id()
    assert budget.reserve("0", "new", call, 4_000, 0)[0] == "ok"
    assert budget.settle(call, 1_500, 0)
    assert complete(store, run_id, "new", new) == "stored"
    ledger = budget.ledger()
    assert (ledger.spent_tokens, ledger.reserved_tokens, ledger.calls) == (7_500, 0, 2)


def test_a_completion_charges_a_call_whose_settle_was_lost(store: RunStore) -> None:
    run_id = running_member(store)
    budget = RunBudget(store.client, run_id)
    assert store.claim(run_id, "0", "t", 60, START).action == "run"
    calls = CallBudget(budget, "0", "t", False)
    settled, lost = calls.next_call_id(), calls.next_call_id()
    assert budget.reserve("0", "t", settled, 3_000, 0)[0] == "ok"
    assert budget.settle(settled, 1_000, 0)
    assert budget.reserve("0", "t", lost, 3_000, 0)[0] == "ok"
    # The second settle never reached Redis (an outage); the completion did.
    assert complete(store, run_id, "t", calls) == "stored"
    ledger = budget.ledger()
    assert (ledger.spent_tokens, ledger.reserved_tokens, ledger.calls) == (4_000, 0, 2)


def test_a_retried_delivery_never_reuses_the_call_ids_of_the_attempt_before(
    store: RunStore,
) -> None:
    """The provider billed 6,000 in the first attempt (settle and completion lost in an outage)
    and 3,000 in a retry that claims with the same token (as retries did before each attempt
    had a token of its own, and as a claim retried after a lost reply does): both count."""
    run_id = running_member(store)
    budget = RunBudget(store.client, run_id)
    assert store.claim(run_id, "0", "t", 60, START).action == "run"
    first = CallBudget(budget, "0", "t", False)
    assert budget.reserve("0", "t", first.next_call_id(), 6_000, 0)[0] == "ok"
    # The retry of the same delivery takes its own lease back.
    assert store.claim(run_id, "0", "t", 60, START).action == "run"
    retry = CallBudget(budget, "0", "t", False)
    call = retry.next_call_id()
    assert budget.reserve("0", "t", call, 4_000, 0)[0] == "ok"
    assert budget.settle(call, 3_000, 0)
    assert complete(store, run_id, "t", retry) == "stored"
    ledger = budget.ledger()
    assert (ledger.spent_tokens, ledger.reserved_tokens, ledger.calls) == (9_000, 0, 2)


def test_a_settle_whose_reservation_was_lost_counts_its_usage_once(store: RunStore) -> None:
    """A reservation acknowledged by a primary and lost in its failover: the settle still
    counts what the provider reported, and a settle retried after a lost reply does not."""
    run_id = running_member(store)
    budget = RunBudget(store.client, run_id)
    assert budget.settle("t/a/0", 700, 0)
    assert not budget.settle("t/a/0", 700, 0)
    ledger = budget.ledger()
    assert (ledger.spent_tokens, ledger.reserved_tokens, ledger.calls) == (700, 0, 1)


def test_a_late_settle_of_a_charged_call_changes_nothing(store: RunStore) -> None:
    run_id = running_member(store)
    budget = RunBudget(store.client, run_id)
    assert store.claim(run_id, "0", "dead", 60, START).action == "run"
    assert budget.reserve("0", "dead", "dead/a/0", 2_000, 0)[0] == "ok"
    assert store.claim(run_id, "0", "new", 60, START, gone_holder="dead").action == "run"
    assert not budget.settle("dead/a/0", 50, 0)
    assert budget.ledger().spent_tokens == 2_000


def test_nothing_stays_reserved_once_a_run_ended(store: RunStore) -> None:
    run_id = running_member(store)
    budget = RunBudget(store.client, run_id)
    assert store.claim(run_id, "0", "t", 60, START).action == "run"
    assert budget.reserve("0", "t", "t/a/0", 2_500, 0)[0] == "ok"
    assert store.finalize(run_id, "failed", "", "ended with a call in flight")
    ledger = budget.ledger()
    assert (ledger.spent_tokens, ledger.reserved_tokens) == (2_500, 0)
    assert not budget.settle("t/a/0", 10, 0), "the charged call settles no more"


def without_usage(reply: dict[str, object]) -> dict[str, object]:
    return {key: value for key, value in reply.items() if key != "usage"}


@pytest.mark.parametrize(
    ("provider", "reply"),
    [("openai", CHAT_ANSWER), ("openai_responses", RESPONSES_ANSWER)],
)
def test_a_response_without_usage_is_charged_at_its_reservation(
    api_worker: tuple[FakeAPI, Client],  # noqa: F811
    provider: str,
    reply: dict[str, object],
) -> None:
    api, client = api_worker
    api.reply(without_usage(reply))
    model = ModelConfig(
        provider=provider, model="m", endpoint=f"test-{provider}", max_output_tokens=3_000
    )
    handle = client.run_agent(AgentSpec(name="quiet", model=model), "Hi.", budget=Budget(
        max_tokens=50_000
    ))  # fmt: skip
    assert handle.result(60).output.outcome == "ok"
    ledger = handle.budget()
    # At least its output limit: what it was reserved at (its input bound on top).
    assert ledger.spent_tokens > 3_000 and ledger.calls == 1
    assert ledger.reserved_tokens == 0


def test_the_reserved_calls_are_only_the_calls_in_flight(store: RunStore) -> None:
    """What a takeover or a sweep scans is what is in flight, however many calls ended (and a
    worker of the version before reads nothing there but reservations)."""
    run_id = running_member(store, max_tokens=10_000_000)
    budget = RunBudget(store.client, run_id)
    assert store.claim(run_id, "0", "t", 60, START).action == "run"
    calls = CallBudget(budget, "0", "t", False)
    for _ in range(200):
        call = calls.next_call_id()
        assert budget.reserve("0", "t", call, 100, 0)[0] == "ok"
        assert budget.settle(call, 10, 0)
    in_flight = calls.next_call_id()
    assert budget.reserve("0", "t", in_flight, 100, 0)[0] == "ok"
    assert store.client.hgetall(RunKeys(run_id).reserved) == {in_flight.encode(): b"100 0"}
    assert complete(store, run_id, "t", calls) == "stored"
    assert store.client.hlen(RunKeys(run_id).ended) == 0, "a completed member leaves no marks"
    assert budget.ledger().spent_tokens == 200 * 10 + 100


def test_a_second_copy_of_a_retried_delivery_finds_the_member_busy(store: RunStore) -> None:
    """A retry takes over from the attempt before it with a token of its own; a broker's
    second delivery of the same retry message (same previous token) then finds it taken."""
    run_id = running_member(store)
    assert store.claim(run_id, "0", "first", 60, START).action == "run"
    assert store.claim(run_id, "0", "retry", 60, START, gone_holder="first").action == "run"
    copy = store.claim(run_id, "0", "copy", 60, START, gone_holder="first")
    assert (copy.action, copy.input) == ("busy", "retry")
