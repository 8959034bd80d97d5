"""``orchestrator watch`` (a bounded live view of a run) and ``orchestrator runs`` (recent runs),
against real workers and a real Redis."""

from __future__ import annotations

import json

from orchestrator import Budget, Client
from orchestrator.cli.watch import Watcher, follow
from orchestrator.cli.watch_state import Strip
from orchestrator.cli.watch_view import EVENTS_TITLE, MEMBERS_TITLE, as_text
from orchestrator.config.settings import load_settings
from orchestrator.local import LocalWorker
from orchestrator.state.keys import RECENT_RUNS, RECENT_RUNS_KEPT, RunKeys
from tests.helpers import items, run_cli, scripted


def member_rows(screen: str) -> list[str]:
    """The rows of the members table of a plain-text screen."""
    section = screen.split(MEMBERS_TITLE + ":", 1)[1].split(EVENTS_TITLE, 1)[0]
    firsts = [(line.split() or [""])[0] for line in section.splitlines()]
    return [first for first in firsts if first.startswith("#") or first in ("final", "agent")]


def event_rows(screen: str) -> list[str]:
    section = screen.split(EVENTS_TITLE, 1)[1]
    return [line for line in section.splitlines() if line.strip().startswith("+")]


def test_watch_follows_2000_members_with_a_bounded_view(client: Client) -> None:
    handle = client.map_reduce(
        "Many", items(2000), scripted("mapper"), scripted("reducer"), 100,
        budget=Budget(max_tokens=10_000_000),
    )  # fmt: skip
    watcher = Watcher(client.redis, handle.id, rows=5, event_rows=6, batch=500)
    frames: list[str] = []
    final = as_text(follow(watcher, lambda view: frames.append(as_text(view)), refresh_s=0.25))
    frames.append(final)

    for screen in frames:  # however many members have run, a frame shows at most 5 + 5 rows
        assert len(member_rows(screen)) <= 10
        assert len(event_rows(screen)) <= 6
    assert handle.id in final and "succeeded" in final
    assert "ended    2000/2000: ok 2000  error 0  skipped 0  cancelled 0" in final
    assert len(member_rows(final)) == 5  # nothing runs: the last five ended
    assert "#" * 48 in final  # every cell of the strip: all its members ended ok
    # Every event was read, once, and every member's end came through the stream.
    state = watcher.state
    assert state.missed == 0 and state.seen == client.redis.xlen(RunKeys(handle.id).events)
    assert not state.running and sum(state.durations) == 2001  # the mappers and the reducer
    assert "tokens " in final and "/10,000,000" in final


def test_watch_forgets_members_whose_end_the_bounded_stream_dropped(
    worker_env: dict[str, str], workers: list[LocalWorker]
) -> None:
    # A stream of about 50 events, for a run that writes more than 1,200: a watcher that
    # stops reading misses most of them, the ends of the members it saw start among them.
    settings = load_settings().model_copy(update={"events_maxlen": 50})
    client = Client(settings=settings)
    handle = client.map_reduce("Drop", items(400), scripted("mapper"), scripted("reducer"), 20)
    watcher = Watcher(client.redis, handle.id, batch=1)
    while not watcher.state.running:
        assert not watcher.ended
        watcher.read(block_ms=1000)
    handle.wait(120)

    watcher.feed.batch = 500
    final = as_text(follow(watcher, refresh_s=0.05))
    state = watcher.state
    assert state.missed > 0 and "events dropped unread" in final
    assert not state.running and state.lost_ends >= 1
    assert "ended    400/400: ok 400" in final  # counts come from the run, not the stream
    assert "0 running" in final


def test_watch_prints_the_final_screen_as_plain_text(
    client: Client, worker_env: dict[str, str]
) -> None:
    mapper = scripted("[red]m[/]", fail_on="item-3")  # markup in a name is shown as it is
    handle = client.map_reduce(
        "Plain", items(30), mapper, scripted("reducer"), 4, budget=Budget(max_tokens=100_000)
    )
    done = run_cli("watch", handle.id, "--rows", "3", "--events", "4", env=worker_env)
    assert done.returncode == 0, done.stderr
    screen = done.stdout
    assert "\x1b" not in screen  # not a terminal: no colours, no cursor movement
    assert f"run {handle.id}  map_reduce  succeeded" in screen
    assert "ended    30/30: ok 29  error 1  skipped 0  cancelled 0" in screen
    assert "[red]m[/]_" in screen
    assert len(member_rows(screen)) == 3 and len(event_rows(screen)) == 4
    assert "x" in screen.split("strip", 1)[1].split()[0]  # the failed member's cell

    once = run_cli("watch", handle.id, "--once", env=worker_env)
    assert once.returncode == 0 and f"run {handle.id}" in once.stdout
    unknown = run_cli("watch", "f" * 32, env=worker_env)
    assert unknown.returncode == 1 and "no run with id" in unknown.stderr


def test_runs_lists_the_newest_runs_and_skips_expired_ones(
    client: Client, worker_env: dict[str, str]
) -> None:
    # Old entries fill the index: each new run pushes the oldest out.
    old = {f"{i:032x}": i for i in range(RECENT_RUNS_KEPT)}
    client.redis.zadd(RECENT_RUNS, old)
    first = client.map_reduce("A", items(2), scripted("mapper"), scripted("reducer"), 2)
    first.wait(30)
    second = client.map_reduce("B", items(3), scripted("mapper", fail_on="item-1"),
                               scripted("reducer"), 3)  # fmt: skip
    second.wait(30)
    assert client.redis.zcard(RECENT_RUNS) == RECENT_RUNS_KEPT
    assert client.redis.zscore(RECENT_RUNS, f"{0:032x}") is None

    listed = json.loads(run_cli("runs", "--limit", "2", "--output", "json", env=worker_env).stdout)
    assert [run["run_id"] for run in listed] == [second.id, first.id]
    assert listed[0]["counts"] == {"ok": 2, "error": 1, "skipped": 0, "cancelled": 0}
    assert listed[0]["total"] == 3 and listed[0]["state"] == "succeeded"

    # A narrow terminal: the table runs past it rather than cut an id.
    table = run_cli("runs", "--limit", "2", env={**worker_env, "COLUMNS": "40"}).stdout
    assert second.id in table and first.id in table and "2/1/0/0 of 3" in table

    client.redis.delete(RunKeys(second.id).run)  # as when its keys expire
    listed = json.loads(run_cli("runs", "--limit", "1", "--output", "json", env=worker_env).stdout)
    assert [run["run_id"] for run in listed] == [first.id]
    assert client.redis.zscore(RECENT_RUNS, second.id) is None
    client.redis.zrem(RECENT_RUNS, *old)


def test_strip_cells_cover_every_member_once() -> None:
    for total in (1, 7, 48, 49, 2000, 10_000):
        strip = Strip(total, 48)
        assert sum(strip.size(cell) for cell in range(strip.cells)) == total
        cells = [strip.cell(position) for position in range(total)]
        assert all(cells.count(cell) == strip.size(cell) for cell in range(strip.cells))
