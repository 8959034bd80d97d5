"""Map-reduce runs end to end on three real worker processes."""

from __future__ import annotations

from datetime import datetime

from orchestrator import Budget, Client
from orchestrator.state.events import AgentEnd, AgentStart, RunEnd, RunStart
from tests.helpers import items, scripted


def max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one instant (an end at t comes before a start at t)."""
    points = [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals]
    running = peak = 0
    for _, step in sorted(points, key=lambda p: (p[0], p[1])):
        running += step
        peak = max(peak, running)
    return peak


def test_outputs_come_back_in_item_order_whatever_order_mappers_finish(client: Client) -> None:
    mapper = scripted("mapper", latency_ms=60, jitter_ms=50, seed=3)
    result = client.map_reduce("Echo", items(12), mapper, scripted("reducer"), 6).result(30)
    assert [o.name for o in result.map_outputs] == [f"mapper_{i}" for i in range(12)]
    for i, output in enumerate(result.map_outputs):
        assert output.outcome == "ok"
        assert f"Echo\n\nProcess this item: item-{i}" in output.answer
    ends = [o.ended_at for o in result.map_outputs if o.ended_at is not None]
    assert ends != sorted(ends), "latencies were meant to make mappers finish out of order"


def test_concurrency_cap_holds_across_three_workers(client: Client) -> None:
    mapper = scripted("mapper", latency_ms=150, jitter_ms=60, seed=1)
    result = client.map_reduce("Cap", items(24), mapper, scripted("reducer"), 4).result(60)
    intervals = [
        (o.started_at, o.ended_at) for o in result.map_outputs if o.started_at and o.ended_at
    ]
    assert len(intervals) == 24
    assert max_overlap(intervals) == 4  # never above the cap, and the cap was used


def test_reducer_gets_task_count_and_summaries_cut_to_300_characters(client: Client) -> None:
    long_answer = "é" * 299 + "xyz"  # multi-byte characters: the cut must not split one
    mapper = scripted("mapper", answer=long_answer)
    handle = client.map_reduce("Digest these", items(3), mapper, scripted("reducer"), 3)
    result = handle.result(30)
    reduced = result.reduced_answer
    assert "Original task: Digest these" in reduced
    assert "Results from 3 sub-agents:" in reduced
    for i in range(3):
        assert f"- [mapper_{i}] {'é' * 299}x\n" in reduced + "\n"
    assert "xy" not in reduced
    assert reduced.rstrip().endswith("Combine these into a single coherent result.")


def test_budget_skips_mappers_and_reducer_falls_back_to_summaries(client: Client) -> None:
    mapper = scripted("mapper", answer="summary")
    handle = client.map_reduce(
        "Budgeted", items(5), mapper, scripted("reducer"), 2, budget=Budget(max_agents=3)
    )
    result = handle.result(30)
    outcomes = [o.outcome for o in result.map_outputs]
    assert outcomes == ["ok", "ok", "ok", "skipped", "skipped"]
    for skipped in result.map_outputs[3:]:
        assert skipped.error is not None and "max_agents (3)" in skipped.error
        assert skipped.turns == 0 and skipped.tokens.total_tokens == 0
    assert result.reduced_answer == "\n".join(f"- [mapper_{i}] summary" for i in range(3))
    assert result.reducer_output is not None and result.reducer_output.outcome == "skipped"
    status = handle.status()
    assert status.state == "succeeded"
    assert status.counts == {"ok": 3, "error": 0, "skipped": 2, "cancelled": 0}


def test_budget_with_room_runs_the_reducer(client: Client) -> None:
    handle = client.map_reduce(
        "Room",
        items(3),
        scripted("mapper"),
        scripted("reducer", answer="merged"),
        3,
        budget=Budget(max_agents=4),
    )
    assert handle.result(30).reduced_answer == "merged"


def test_token_budget_stops_admitting_once_spent(client: Client) -> None:
    # A call here reserves its exact input (about 10 tokens) plus its output limit of 16.
    mapper = scripted("mapper", max_output_tokens=16, latency_ms=20)
    handle = client.map_reduce(
        "Tokens", items(10), mapper, scripted("reducer"), 1, budget=Budget(max_tokens=60)
    )
    result = handle.result(30)
    ran = [o for o in result.map_outputs if o.outcome == "ok"]
    skipped = [o for o in result.map_outputs if o.outcome == "skipped"]
    assert ran and skipped
    assert all("max_tokens (60 tokens)" in (o.error or "") for o in skipped)
    assert all(o.turns == 0 and o.tokens.total_tokens == 0 for o in skipped)
    assert sum(o.tokens.total_tokens for o in ran) <= 60
    assert handle.budget().spent_tokens <= 60


def test_failing_mapper_is_isolated_at_its_own_index(client: Client) -> None:
    mapper = scripted("mapper", fail_on="item-2")
    result = client.map_reduce("Isolate", items(5), mapper, scripted("reducer"), 5).result(30)
    failed = result.map_outputs[2]
    assert failed.name == "mapper_2" and failed.outcome == "error"
    assert failed.error is not None and "item-2" in failed.error
    assert [o.outcome for i, o in enumerate(result.map_outputs) if i != 2] == ["ok"] * 4
    assert not result.all_succeeded()
    assert "- [mapper_2]" not in result.reduced_answer
    assert "Results from 5 sub-agents" in result.reduced_answer


def test_cancel_stops_new_and_running_mappers_within_seconds(client: Client) -> None:
    mapper = scripted("mapper", latency_ms=3_600_000)  # an hour each
    handle = client.map_reduce("Cancel me", items(20), mapper, scripted("reducer"), 3)
    first_starts = 0
    for event in handle.events():
        if isinstance(event, AgentStart):
            first_starts += 1
            if first_starts == 3:
                break
    assert handle.cancel() is True
    result = handle.result(timeout=60)  # ends only if the cancel stopped the running mappers
    status = handle.status()
    assert status.state == "cancelled"
    assert len(result.map_outputs) == 20
    assert all(o.outcome == "cancelled" for o in result.map_outputs)
    starts = [e for e in handle.events(follow=False) if isinstance(e, AgentStart)]
    assert len(starts) == 3  # nothing started after the cancel
    assert handle.cancel() is False  # already ended


def test_deadline_ends_a_run_whose_mappers_outlive_it(client: Client) -> None:
    mapper = scripted("mapper", latency_ms=3_600_000)  # an hour each
    handle = client.map_reduce("Slow", items(4), mapper, scripted("reducer"), 2, deadline_s=1)
    result = handle.result(timeout=60)  # ends only if the deadline stopped the mappers
    status = handle.status()
    assert status.state == "cancelled" and status.cancel_reason == "deadline exceeded"
    assert all(o.outcome == "cancelled" for o in result.map_outputs)


def test_late_duplicate_delivery_returns_stored_output_without_a_model_call(
    client: Client,
) -> None:
    handle = client.map_reduce("Once", items(2), scripted("mapper"), scripted("reducer"), 2)
    first = handle.result(30).map_outputs[0]
    # Members store no task result unless the sender asks for one, as this one does.
    again = client._celery.send_task(
        "tasks.agents.run_member", args=(handle.id, 0), queue="agents", ignore_result=False
    ).get(timeout=10)
    assert again == {"index": 0, "name": "mapper_0", "outcome": first.outcome}
    assert handle.client.store.stored_output(handle.id, "0") == first
    starts = [e for e in handle.events(follow=False) if isinstance(e, AgentStart) and e.index == 0]
    assert len(starts) == 1


def test_events_tell_the_whole_run_in_order(client: Client) -> None:
    handle = client.map_reduce("Events", items(4), scripted("mapper"), scripted("reducer"), 2)
    events = list(handle.events())
    assert isinstance(events[0], RunStart) and events[0].total == 4
    assert isinstance(events[-1], RunEnd) and events[-1].state == "succeeded"
    ended = sorted(e.index for e in events if isinstance(e, AgentEnd) and e.index is not None)
    assert ended == [0, 1, 2, 3]
    reducer_end = [e for e in events if isinstance(e, AgentEnd) and e.index is None]
    assert len(reducer_end) == 1 and reducer_end[0].name == "reducer"


def test_another_client_reattaches_by_run_id(client: Client, worker_env: dict[str, str]) -> None:
    handle = client.map_reduce("Attach", items(3), scripted("mapper"), scripted("reducer"), 3)
    other = Client(redis_url=worker_env["ORCHESTRATOR_REDIS_URL"]).get_run(handle.id)
    assert len(other.result(30).map_outputs) == 3
    assert other.status().counts["ok"] == 3


def test_cost_budget_stops_admitting_once_spent(client: Client) -> None:
    # About $0.0002 a mapper; a call reserves up to $0.00026 (its input and 16 tokens).
    mapper = scripted("mapper", max_output_tokens=16, cost_per_1k_tokens=0.01)
    handle = client.map_reduce(
        "Costs", items(10), mapper, scripted("reducer"), 1, budget=Budget(max_cost_usd=0.0005)
    )
    result = handle.result(30)
    ran = [o for o in result.map_outputs if o.outcome == "ok"]
    skipped = [o for o in result.map_outputs if o.outcome == "skipped"]
    assert ran and skipped
    assert all("max_cost_usd (0.000500000 USD)" in (o.error or "") for o in skipped)
    assert sum(o.tokens.cost_usd for o in ran) <= 0.0005
    assert handle.budget().spent_usd <= 0.0005
