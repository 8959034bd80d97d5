"""A reduce that fits: summaries too big for the reducer's window are reduced as a tree of
partial reducers, on real workers. The scripted reducer echoes its prompt, so each partial
reducer's stored answer shows what it was given."""

from __future__ import annotations

import re
from pathlib import Path

import redis

from orchestrator import AgentSpec, Budget, Client, ModelConfig
from orchestrator.cli.watch_state import WatchState
from orchestrator.local import LocalRedis
from orchestrator.models import AgentOutput
from orchestrator.models.results import MapReduceResult
from orchestrator.state.events import AgentEnd, AgentStart, Event, ModelTurn
from orchestrator.state.keys import RunKeys
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, scripted, start_workers, wait_for

WINDOW = 1000
INPUT_BUDGET = 800  # 80% of the window
ECHO = "[scripted scripted-1] "


def small_reducer(**options: object) -> AgentSpec:
    """A scripted reducer with a 1,000-token window: 100 summaries take about 1,800 tokens."""
    model = ModelConfig(provider="scripted", context_window=WINDOW, options=dict(options))
    return AgentSpec(name="reducer", model=model)


def partials(client: Client, run_id: str) -> dict[str, AgentOutput]:
    """The stored partial reducers of a run, by ``level.chunk``."""
    raw = client.redis.hgetall(RunKeys(run_id).partials)
    return {
        key.decode(): AgentOutput.model_validate_json(value)
        for key, value in raw.items()
        if not key.startswith(b"agent:")
    }


def level_of(part: str) -> int:
    return int(part.split(".")[0])


def in_chunk_order(parts: list[str]) -> list[str]:
    return sorted(parts, key=lambda p: tuple(int(n) for n in p.split(".")))


def mappers_in(text: str) -> list[str]:
    return re.findall(r"^- \[(mapper_\d+)\]", text, flags=re.MULTILINE)


def reducer_turns(events: list[Event]) -> list[ModelTurn]:
    return [e for e in events if isinstance(e, ModelTurn) and e.name.startswith("reducer")]


def test_watch_shows_partial_reducers_beside_the_reducer() -> None:
    state = WatchState(run_id="r", kind="map_reduce", total=100)
    state.apply(AgentStart(run_id="r", name="reducer"))
    state.apply(AgentStart(run_id="r", name="reducer.1.1", part="1.1"))
    state.apply(AgentStart(run_id="r", name="reducer.1.2", part="1.2"))
    state.apply(AgentEnd(run_id="r", name="reducer.1.1", part="1.1", outcome="ok"))
    assert {k: m.name for k, m in state.running.items()} == {
        "final": "reducer",
        "final.1.2": "reducer.1.2",
    }
    assert [(m.label, m.outcome) for m in state.ended] == [("final.1.1", "ok")]


def test_summaries_too_big_for_the_window_are_reduced_as_a_tree_whose_calls_all_fit(
    client: Client,
) -> None:
    handle = client.map_reduce("Digest", items(100), scripted("mapper"), small_reducer(), 10)
    result = handle.result(60)
    events = list(handle.events(follow=False))

    turns = reducer_turns(events)
    assert all(t.usage.input_tokens <= INPUT_BUDGET for t in turns), "every reducer call fits"
    stored = partials(client, handle.id)
    ends = {e.part: e for e in events if isinstance(e, AgentEnd) and e.part is not None}
    starts = {e.part for e in events if isinstance(e, AgentStart) and e.part is not None}
    assert set(ends) == starts == set(stored), "events show every partial reducer"
    assert all(e.outcome == "ok" and e.name == f"reducer.{part}" for part, e in ends.items())
    levels = sorted({level_of(part) for part in stored})
    assert len(levels) >= 2 and levels == list(range(1, len(levels) + 1))

    # Level 1 covers every successful mapper once, in item order, in consecutive chunks.
    first = in_chunk_order([p for p in stored if level_of(p) == 1])
    assert len(first) > 1
    assert all(stored[p].answer.startswith(ECHO + "Original task: Digest") for p in first)
    covered = [name for part in first for name in mappers_in(stored[part].answer)]
    assert covered == [o.name for o in result.map_outputs if o.succeeded()]
    assert len(covered) == 100

    # Each level above reduces every answer of the level below.
    for level in levels[1:]:
        below = in_chunk_order([p for p in stored if level_of(p) == level - 1])
        given = "".join(stored[p].answer for p in stored if level_of(p) == level)
        assert all(f"- [reducer.{p}] " in given for p in below)

    # One reducer, the run's own, gives the answer, over every answer of the last level.
    top_ends = [e for e in events if isinstance(e, AgentEnd) and e.index is None and not e.part]
    assert [e.name for e in top_ends] == ["reducer"]
    assert len([t for t in turns if t.part is None]) == 1
    final = result.reducer_output
    assert final is not None and final.outcome == "ok"
    assert result.reduced_answer == final.answer
    assert result.reduced_answer.startswith(ECHO + "Original task: Digest")
    last = [p for p in stored if level_of(p) == levels[-1]]
    assert all(f"- [reducer.{p}] " in result.reduced_answer for p in last)
    # The reducer's output counts every reducer call of the tree.
    assert final.tokens.total_tokens == sum(t.usage.total_tokens for t in turns)
    assert final.turns == len(turns)


def test_summaries_that_fit_keep_one_reducer_call_on_the_prompt_it_always_had(
    client: Client,
) -> None:
    handle = client.map_reduce("Digest", items(5), scripted("mapper"), small_reducer(), 5)
    result = handle.result(30)
    events = list(handle.events(follow=False))
    assert len(reducer_turns(events)) == 1
    assert not [e for e in events if isinstance(e, AgentStart | AgentEnd) and e.part]
    lines = "\n".join(f"- [{o.name}] {o.answer}" for o in result.map_outputs)
    prompt = (
        f"Original task: Digest\n\nResults from 5 sub-agents:\n{lines}\n\n"
        "Combine these into a single coherent result."
    )
    assert result.reduced_answer == ECHO + prompt
    # The reducer builds its prompt when it runs: the run's hash never holds it.
    assert client.redis.hget(RunKeys(handle.id).run, "final_prompt") == b""
    assert not client.redis.exists(RunKeys(handle.id).partials)


def test_a_partial_reducer_the_budget_denies_leaves_what_was_reduced_and_the_rest(
    client: Client,
) -> None:
    # 100 mappers, the reducer and one partial reducer: the other level-1 partials are denied.
    budget = Budget(max_agents=102)
    handle = client.map_reduce(
        "Digest", items(100), scripted("mapper"), small_reducer(), 10, budget=budget
    )
    result = handle.result(60)
    assert handle.status().state == "succeeded"
    events = list(handle.events(follow=False))
    ends = [e for e in events if isinstance(e, AgentEnd) and e.part is not None]
    ran = [e for e in ends if e.outcome == "ok"]
    denied = [e for e in ends if e.outcome == "skipped"]
    assert len(ran) == 1 and len(denied) >= 1 and len(ends) == len(ran) + len(denied)
    assert all(e.part is not None and e.part.startswith("1.") for e in ends)
    assert all("max_agents (102)" in (e.error or "") for e in denied)
    assert handle.budget().agents == 102
    final = result.reducer_output
    assert final is not None and final.outcome == "skipped"
    assert final.error is not None and "max_agents (102)" in final.error
    assert "(partial reducer reducer.1." in final.error
    # The answer: the partial reducer's answer where it ran, the summaries where none did.
    answer = result.reduced_answer
    assert f"- [reducer.{ran[0].part}] {ECHO}Original task: Digest" in answer
    reduced = mappers_in(partials(client, handle.id)[str(ran[0].part)].answer)
    assert reduced and set(reduced) <= set(mappers_in(answer))
    assert mappers_in(answer) == [f"mapper_{i}" for i in range(100)], "each mapper, once"
    assert all(t.usage.input_tokens <= INPUT_BUDGET for t in reducer_turns(events))


def test_a_takeover_mid_tree_does_not_run_finished_partial_reducers_again(
    tmp_path: Path,
) -> None:
    server = LocalRedis()
    env = {"ORCHESTRATOR_REDIS_URL": server.url, **FAST_TIMINGS}
    (victim,) = start_workers(env, ["victim"], tmp_path, concurrency=2)
    survivor = None
    try:
        client = Client(redis_url=server.url)
        # One partial reducer at a time, 1.5 s each: the victim dies during the second.
        reducer = small_reducer(latency_ms=1500)
        budget = Budget(max_agents=1000)  # so that the ledger counts agents
        handle = client.map_reduce(
            "Digest", items(100), scripted("mapper"), reducer, 1, budget=budget
        )
        state = redis.Redis.from_url(server.url)
        partials_key = RunKeys(handle.id).partials
        wait_for(lambda: state.hexists(partials_key, "1.1"), "a partial reducer was stored")
        victim.kill()
        finished = set(partials(client, handle.id))
        (survivor,) = start_workers(env, ["survivor"], tmp_path, concurrency=2)

        result: MapReduceResult = handle.result(timeout=90)
        assert result.reducer_output is not None and result.reducer_output.outcome == "ok"
        events = list(handle.events(follow=False))
        finals = [e for e in events if isinstance(e, AgentStart) and e.index is None and not e.part]
        assert len(finals) == 2, "the survivor took the reducer over"
        for part in finished:
            starts = [e for e in events if isinstance(e, AgentStart) and e.part == part]
            turns = [e for e in events if isinstance(e, ModelTurn) and e.part == part]
            assert len(starts) == 1 and len(turns) == 1, f"{part} ran once"
        stored = partials(client, handle.id)
        assert finished < set(stored)
        # Each partial reducer counted once as an agent, however many executions started it.
        assert handle.budget().agents == 100 + 1 + len(stored)
    finally:
        victim.kill()
        if survivor is not None:
            survivor.stop()
        server.stop()


def test_cancel_stops_a_tree_reduce_and_its_running_partial_reducers(client: Client) -> None:
    reducer = small_reducer(latency_ms=3_600_000)  # an hour each
    handle = client.map_reduce("Digest", items(100), scripted("mapper"), reducer, 10)
    wait_for(
        lambda: any(isinstance(e, AgentStart) and e.part for e in handle.events(follow=False)),
        "a partial reducer started",
    )
    assert handle.cancel() is True
    result = handle.result(timeout=60)  # ends only if the cancel stopped the partial reducers
    assert handle.status().state == "cancelled"
    assert result.reducer_output is not None and result.reducer_output.outcome == "cancelled"
    ends = [e for e in handle.events(follow=False) if isinstance(e, AgentEnd) and e.part]
    assert ends and all(e.outcome == "cancelled" for e in ends)
