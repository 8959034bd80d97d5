"""Following a run for ``orchestrator watch``: read its events into a ``WatchState`` as they
come, and draw the bounded view at most once per refresh interval, so that a burst of events
costs reading them, not drawing them."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from rich.console import RenderableType

from orchestrator.cli.watch_state import WatchState
from orchestrator.cli.watch_view import render_view
from orchestrator.state.watch_feed import RunFeed


class Watcher:
    """One run being watched.

    Parameters:
        client: the state Redis.
        run_id: the run (``RunNotFoundError`` when it does not exist).
        rows: running and recently ended members shown (each at most this many).
        event_rows: latest events shown.
        batch: events read at once.
    """

    def __init__(
        self,
        client: redis.Redis,
        run_id: str,
        rows: int = 10,
        event_rows: int = 8,
        batch: int = 1000,
    ) -> None:
        self.feed = RunFeed(client, run_id, batch=batch)
        self.snapshot = self.feed.snapshot()
        self.state = WatchState(
            run_id, self.snapshot.kind, self.snapshot.total, rows=rows, event_rows=event_rows
        )

    @property
    def ended(self) -> bool:
        """The run's end was read from its stream."""
        return self.state.end_state is not None

    def catch_up(self) -> None:
        """Read every event there is now, without waiting."""
        while self.feed.read(self.state) >= self.feed.batch:
            pass

    def read(self, block_ms: int | None = None) -> int:
        """Read the next batch of events (waiting up to ``block_ms`` for one)."""
        return self.feed.read(self.state, block_ms)

    def view(self) -> RenderableType:
        """The screen now (the run's state, counts and budget read afresh)."""
        self.snapshot = self.feed.snapshot()
        return render_view(self.state, self.snapshot)


def follow(
    watcher: Watcher,
    show: Callable[[RenderableType], None] | None = None,
    refresh_s: float = 0.5,
) -> RenderableType:
    """Follow the run until it ends, handing ``show`` a fresh view at most every
    ``refresh_s``; returns the final view."""
    block_ms = max(int(refresh_s * 1000), 1)
    next_frame = 0.0
    while not watcher.ended:
        watcher.read(block_ms)
        if watcher.ended or time.monotonic() < next_frame:
            continue
        view = watcher.view()
        if watcher.snapshot.terminal:
            # RunEnd is written with the final state in one script: catching up reads it.
            break
        if show is not None:
            show(view)
        next_frame = time.monotonic() + refresh_s
    watcher.catch_up()
    final = watcher.view()
    if show is not None:
        show(final)
    return final
