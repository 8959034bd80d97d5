"""A full Redis never becomes a member's output: a model call's settle, a turn's event or
checkpoint that Redis refuses waits for room (the lease held), and the member goes on from
where it was, its model never called again."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from orchestrator import Budget, Client
from orchestrator.local import LocalRedis, LocalWorker
from orchestrator.state.budget import RunBudget
from orchestrator.state.events import ModelTurn
from tests.helpers import items, scripted, wait_for
from tests.redis_faults.test_redis_full import fill, full_redis, starts
from tests.redis_faults.test_redis_restart import started

__all__ = ["full_redis"]  # the fixture, used by name

# Any line of a member that waits for room: its budget, its events, its checkpoint or its
# output (the watchdog says so too, in lines of its own).
REFUSED = "Redis refuses writes ("


def members_waiting(logs: list[Path]) -> int:
    return sum(
        1
        for log in logs
        for line in log.read_text().splitlines()
        if REFUSED in line and "watchdog" not in line
    )


def model_calls(handle: object) -> Counter[tuple[str, int]]:
    events = handle.events(follow=False)  # type: ignore[attr-defined]
    return Counter((e.name, e.turn) for e in events if isinstance(e, ModelTurn))


def fill_during_calls_then_free(
    client: Client, handle: object, logs: list[Path], members: int
) -> None:
    wait_for(lambda: started(handle, members), "every member is inside its model call")
    fill(client.redis)
    wait_for(lambda: members_waiting(logs) >= members, "every member waits for room")
    assert handle.status().writes_refused is not None  # type: ignore[attr-defined]
    client.redis.config_set("maxmemory", 0)


def test_a_full_redis_at_a_budgeted_calls_settle_leaves_its_output_ok(
    full_redis: tuple[LocalRedis, list[LocalWorker]], tmp_path: Path
) -> None:
    server, workers = full_redis
    client = Client(redis_url=server.url)
    logs = [tmp_path / f"{worker.name}.log" for worker in workers]
    mapper = scripted("mapper", latency_ms=1500)
    budget = Budget(max_tokens=10**9)
    handle = client.map_reduce("Settle", items(4), mapper, scripted("r"), 4, budget=budget)
    fill_during_calls_then_free(client, handle, logs, 4)

    result = handle.result(timeout=60)
    assert [o.outcome for o in result.map_outputs] == ["ok"] * 4
    assert [o.name for o in result.map_outputs] == [f"mapper_{i}" for i in range(4)]
    assert starts(handle) == Counter({**{f"mapper_{i}": 1 for i in range(4)}, "r": 1})
    assert model_calls(handle) == Counter(
        {**{(f"mapper_{i}", 1): 1 for i in range(4)}, ("r", 1): 1}
    )
    # Each call is charged what it used, none at its bound (its 4,096 output tokens).
    ledger = RunBudget(client.redis, handle.id).ledger()
    used = sum(o.tokens.total_tokens for o in [*result.map_outputs, result.reducer_output] if o)
    assert ledger.spent_tokens == used < 4096 and ledger.reserved_tokens == 0


def test_a_full_redis_between_an_agents_turns_leaves_its_output_ok(
    full_redis: tuple[LocalRedis, list[LocalWorker]], tmp_path: Path
) -> None:
    server, workers = full_redis
    client = Client(redis_url=server.url)
    logs = [tmp_path / f"{worker.name}.log" for worker in workers]
    turns = [{"tool_calls": [{"name": "nosuchtool", "arguments": {}}]}, {"text": "done"}]
    mapper = scripted("mapper", latency_ms=1500, script=turns)
    handle = client.map_reduce("Turns", items(2), mapper, scripted("r"), 2)
    fill_during_calls_then_free(client, handle, logs, 2)

    result = handle.result(timeout=60)
    assert [(o.outcome, o.answer) for o in result.map_outputs] == [("ok", "done")] * 2
    calls = {(f"mapper_{i}", turn): 1 for i in range(2) for turn in (1, 2)}
    assert model_calls(handle) == Counter({**calls, ("r", 1): 1})
