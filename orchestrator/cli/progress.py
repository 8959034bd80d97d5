"""A live Rich progress bar for a run, driven by its event stream."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orchestrator.client import RunHandle
from orchestrator.models import RunStatus
from orchestrator.state.events import AgentEnd, RunEnd


def follow_with_progress(handle: RunHandle[Any], console: Console | None = None) -> RunStatus:
    """Show mappers done / total with skipped and failed counts until the run ends."""
    console = console or Console(stderr=True)
    counts = {"ok": 0, "error": 0, "skipped": 0, "cancelled": 0}
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("skipped {task.fields[skipped]}  failed {task.fields[failed]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        # The total comes from the status: a long run's bounded stream may have lost RunStart.
        bar = progress.add_task("mappers", total=handle.status().total, skipped=0, failed=0)
        for event in handle.events(follow=True):
            if isinstance(event, AgentEnd) and event.index is not None:
                counts[event.outcome] += 1
                progress.update(
                    bar,
                    completed=sum(counts.values()),
                    skipped=counts["skipped"],
                    failed=counts["error"],
                )
            elif isinstance(event, RunEnd):
                break
    return handle.wait()
