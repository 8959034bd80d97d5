"""Steps between members lost with a dead process are redone by the watchdog.

Each test writes the run's state as a dead process would have left it (without the message
that should have followed) and checks that the workers' watchdogs finish the run anyway.
"""

from __future__ import annotations

from uuid import uuid4

from orchestrator import Client, MapReduceResult, RunHandle
from orchestrator.models import AgentOutput, Budget
from orchestrator.models.requests import MapReduceRequest
from orchestrator.state.events import AgentEnd
from tests.helpers import items, scripted


def create_without_admission(client: Client, count: int) -> RunHandle[MapReduceResult]:
    run_id = uuid4().hex
    request = MapReduceRequest(
        task="Lost",
        mapper=scripted("mapper"),
        reducer=scripted("reducer", answer="reduced"),
        max_concurrent=count,
        item_count=count,
    )
    client.store.create_run(run_id, request, items(count))
    return RunHandle(client, run_id, MapReduceResult)


def live_node(client: Client) -> str:
    """A worker that is alive: what it admitted is taken to be published, not lost."""
    return client.workers()[0]


def test_a_run_whose_admission_message_was_lost_is_admitted(client: Client) -> None:
    handle = create_without_admission(client, 3)  # admit_run is never sent
    result = handle.result(timeout=20)
    assert [o.outcome for o in result.map_outputs] == ["ok"] * 3
    assert result.reduced_answer == "reduced"


def test_a_run_whose_chord_body_was_lost_is_reduced(client: Client) -> None:
    handle = create_without_admission(client, 3)
    # Admitted by a live worker, but no chord and no member message.
    admission = client.store.start(handle.id, live_node(client))
    for index in admission.admitted:
        output = AgentOutput(name=f"mapper_{index}", answer=f"done {index}")
        event = AgentEnd(run_id=handle.id, name=output.name, index=index, outcome="ok")
        client.store.complete(handle.id, str(index), output, [event], node=live_node(client))
    result = handle.result(timeout=20)
    assert [o.answer for o in result.map_outputs] == ["done 0", "done 1", "done 2"]
    assert result.reduced_answer == "reduced"
    assert handle.status().state == "succeeded"


def test_a_run_whose_reducer_finished_but_never_ended_the_run_is_ended(client: Client) -> None:
    handle = create_without_admission(client, 1)
    node = live_node(client)
    client.store.start(handle.id, node)
    mapped = AgentOutput(name="mapper_0", answer="mapped")
    mapped_end = AgentEnd(run_id=handle.id, name="mapper_0", index=0, outcome="ok")
    client.store.complete(handle.id, "0", mapped, [mapped_end], node=node)
    assert client.store.gate_final(handle.id, node, "prompt")[0] == "admitted"
    reduced = AgentOutput(name="reducer", answer="stored reduction")
    reduced_end = AgentEnd(run_id=handle.id, name="reducer", outcome="ok")
    client.store.complete(handle.id, "final", reduced, [reduced_end], node=node)
    # The process died here, before ending the run.
    result = handle.result(timeout=20)
    assert result.reduced_answer == "stored reduction"
    assert handle.status().state == "succeeded"


def test_members_admitted_but_never_published_run_once_their_lease_expires(
    client: Client,
) -> None:
    # The admitter is alive and named, but its publish was lost (a lost reply, a broker that
    # refused): nothing confirmed the members as queued, so their admission lease runs out.
    handle = create_without_admission(client, 3)
    admission = client.store.start(handle.id, live_node(client))
    assert admission.admitted == [0, 1, 2]
    result = handle.result(timeout=30)
    assert [o.outcome for o in result.map_outputs] == ["ok"] * 3
    assert result.reduced_answer == "reduced"


def test_a_cancel_whose_ending_was_lost_part_way_still_ends_the_run(client: Client) -> None:
    handle = create_without_admission(client, 4)
    node = live_node(client)
    admission = client.store.start(handle.id, node)
    client.store.confirm_published(handle.id, node, [str(i) for i in admission.admitted])
    assert client.store.request_cancel(handle.id, "stop")
    # A sweeper takes the cancel's findings and dies before ending anything.
    findings = client.store.sweep(handle.id, "a-sweeper-that-died")
    assert sorted(findings.abandon) == ["0", "1", "2", "3"]
    status = handle.wait(timeout=30)
    assert status.state == "cancelled"
    assert status.counts["cancelled"] == 4


def test_members_denied_by_the_budget_whose_ending_was_lost_are_ended(client: Client) -> None:
    run_id = uuid4().hex
    request = MapReduceRequest(
        task="Denied",
        mapper=scripted("mapper"),
        reducer=scripted("reducer", answer="reduced"),
        max_concurrent=3,
        item_count=3,
        budget=Budget(max_agents=2),
    )
    client.store.create_run(run_id, request, items(3))
    handle: RunHandle[MapReduceResult] = RunHandle(client, run_id, MapReduceResult)
    node = live_node(client)
    admission = client.store.start(run_id, node)
    assert admission.admitted == [0, 1] and [i for i, _ in admission.denied] == [2]
    # The process that was to end member 2 as skipped died; the others ran.
    for index in admission.admitted:
        output = AgentOutput(name=f"mapper_{index}", answer=f"done {index}")
        event = AgentEnd(run_id=run_id, name=output.name, index=index, outcome="ok")
        client.store.complete(run_id, str(index), output, [event], node=node)
    result = handle.result(timeout=30)
    assert [o.outcome for o in result.map_outputs] == ["ok", "ok", "skipped"]
    assert result.map_outputs[2].error == "budget: max_agents (2) reached"


def test_queued_members_whose_messages_were_taken_by_a_vanished_worker_run(
    client: Client,
) -> None:
    # The members were published and confirmed as queued; then a worker took their messages
    # from the queue and was cut off (or died) before it recorded their reception: the run says
    # they wait in the queue, where they no longer are, and a queued member has no lease.
    handle = create_without_admission(client, 3)
    node = live_node(client)
    admission = client.store.start(handle.id, node)
    client.store.confirm_published(handle.id, node, [str(i) for i in admission.admitted])
    result = handle.result(timeout=30)
    assert [o.outcome for o in result.map_outputs] == ["ok"] * 3
    assert result.reduced_answer == "reduced"
