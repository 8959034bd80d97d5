"""A member SIGKILLed inside a model call under ``max_tokens``, with RabbitMQ as the broker:
the dead worker's message is delivered again at once, another worker takes the member over
(its holder is positively gone), and the claim charges the dead call at its reservation.
The run ends without its member timing out, the dead call counts as spent, and nothing stays
reserved.

The lease is ten minutes, far beyond the waits here, so the watchdog's expired-lease path
(whose sweep always charged the calls it found in flight) cannot be what ends the run: only
the takeover by claim can. Nothing here asserts a duration; a stranded reservation shows as a
member that waits for the budget until its time limit ends it ``timed out``, or as a ledger
that keeps the dead call reserved and never counts it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import redis

from orchestrator import AgentRunResult, AgentSpec, Budget, ModelConfig
from orchestrator.client import RunHandle
from orchestrator.local import LocalRedis, LocalWorker
from orchestrator.state.budget import RunBudget
from orchestrator.state.events import AgentStart
from tests.deploy.rabbitmq import LocalRabbitMQ
from tests.helpers import start_workers, wait_for
from tests.operate.test_rabbitmq import client_for, rabbit_env
from tests.servers.model_server import SlowModelServer

PROMPT = "Count the beans in the jar."
OUTPUT_LIMIT = 6_000
"""Each call reserves this plus its input bound (under 200 tokens here): about 6,200."""
ANSWER_TOKENS = 15
"""The usage every answer of the model server reports
(``tests.servers.model_server.completion``)."""
TIMEOUT_S = 60.0
"""The member's time limit: what a member waiting for a stranded reservation runs into. The
passing run never comes near it; the lease (600 s) is far beyond it."""


@pytest.mark.timeout(300)  # the module's RabbitMQ node may start first
@pytest.mark.parametrize(
    ("max_tokens", "retaken_call_fits"),
    [(20_000, True), (10_000, False)],
    ids=["retaken-call-fits", "retaken-call-denied"],
)
def test_a_member_killed_in_a_call_is_taken_over_at_once_and_its_call_charged(
    rabbitmq_node: LocalRabbitMQ, tmp_path: Path, max_tokens: int, retaken_call_fits: bool
) -> None:
    """``retaken-call-fits``: the dead call's bound plus the retaken call's fit ``max_tokens``:
    the run succeeds, and the ledger has spent the dead call's bound plus the answer's usage.
    ``retaken-call-denied``: they do not (the finding's numbers: about 6,200 of 10,000 each):
    once the dead call is charged, the retaken call can never fit and is denied at once, so
    the member ends ``skipped`` by the budget; a reservation left in flight would instead make
    the call wait until the member's time limit."""
    server = LocalRedis()
    api = SlowModelServer(delay_s=0)
    api.hang(PROMPT)  # the first call gets no answer: its worker is killed inside it
    env = rabbit_env(rabbitmq_node, server.url, ORCHESTRATOR_LEASE_S="600", **api.worker_env())
    workers: list[LocalWorker] = []
    try:
        workers = start_workers(env, ["taker-a", "taker-b"], tmp_path, concurrency=2)
        client = client_for(env)
        model = ModelConfig(
            provider="openai", model="slow", endpoint="slow", max_output_tokens=OUTPUT_LIMIT
        )
        spec = AgentSpec(name="counter", model=model, timeout_s=TIMEOUT_S)
        handle = client.run_agent(spec, PROMPT, budget=Budget(max_tokens=max_tokens))
        ledger = RunBudget(redis.Redis.from_url(server.url), handle.id).ledger

        # The positive signal: the model server has the call, so its worker is inside it, and
        # the call's reservation (its upper bound) is in the ledger.
        wait_for(lambda: PROMPT in api.received, "the call came", 60, 0.01)
        before = ledger()
        bound = before.reserved_tokens
        assert before.spent_tokens == 0 and bound > OUTPUT_LIMIT, before
        if retaken_call_fits:
            assert 2 * bound <= max_tokens, f"the retaken call ({bound}) must fit: {before}"
        else:
            assert bound <= max_tokens < 2 * bound, f"{bound} twice must not fit: {before}"
        (first,) = start_pids(handle)
        victim = next(w for w in workers if w.pid == first)
        survivor = next(w for w in workers if w is not victim)

        kill_group(victim)
        status = handle.wait(timeout=TIMEOUT_S + 60)
        (output,) = list(handle.outputs())
        wait_for(lambda: PROMPT in api.abandoned, "the dead call was abandoned", 30, 0.01)

        # The member ran again at once on the other worker, and was not ended by its time limit.
        assert "timed out" not in (output.error or ""), output
        assert start_pids(handle) == [victim.pid, survivor.pid], "one start on each worker"
        if retaken_call_fits:
            assert status.state == "succeeded", status
            assert output.outcome == "ok" and output.answer == f"answer to {PROMPT}", output
            assert api.answered == [PROMPT], "the retaken call was made and answered"
        else:
            assert output.outcome == "skipped", output
            assert output.error is not None and "budget: max_tokens" in output.error, output
            assert api.received == [PROMPT], "the retaken call was never made"

        # The dead call is charged at its reservation, exactly once; nothing stays reserved.
        after = ledger()
        assert after.reserved_tokens == 0, f"a reservation stayed in flight: {after}"
        spent = bound + (ANSWER_TOKENS if retaken_call_fits else 0)
        assert after.spent_tokens == spent, f"expected {spent} spent (bound {bound}): {after}"
    finally:
        for worker in workers:
            worker.stop()
        server.stop()
        api.close()


def start_pids(handle: RunHandle[AgentRunResult]) -> list[int]:
    """The pid of the worker of each start of the run's member, in order."""
    events = handle.events(follow=False)
    workers = [e.worker or "" for e in events if isinstance(e, AgentStart)]
    return [int(worker.rpartition(":")[2]) for worker in workers]


def kill_group(worker: LocalWorker) -> None:
    """SIGKILL the worker and any process it started (its own session): the model call dies
    with the process making it, unanswered."""
    os.killpg(worker.pid, signal.SIGKILL)
    worker.process.wait()
