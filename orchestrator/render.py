"""Terminal rendering of results and statuses for the CLI and the demo."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from orchestrator.models import RunStatus
from orchestrator.results import MapReduceResult

OUTCOME_STYLE = {"ok": "green", "error": "red", "skipped": "yellow", "cancelled": "magenta"}


def outputs_table(result: MapReduceResult, answer_chars: int = 70, tail: bool = False) -> Table:
    """A table of mapper outputs; long answers are cut to ``answer_chars`` from the start, or
    from the end with ``tail`` (where answers share a long opening, as echoes do)."""
    table = Table(title=f"Mapper outputs ({len(result.map_outputs)})")
    for column in ("#", "agent", "outcome", "ms", "tokens", "answer or error"):
        table.add_column(column, overflow="fold" if column == "answer or error" else "ellipsis")
    for index, output in enumerate(result.map_outputs):
        text = output.answer if output.succeeded() else (output.error or "")
        text = " ".join(text.split())
        if len(text) > answer_chars:
            text = "…" + text[1 - answer_chars :] if tail else text[: answer_chars - 1] + "…"
        style = OUTCOME_STYLE.get(output.outcome, "")
        table.add_row(
            str(index),
            output.name,
            f"[{style}]{output.outcome}[/]",
            f"{output.duration_ms:.0f}",
            str(output.tokens.total_tokens),
            text,
        )
    return table


def print_status(console: Console, status: RunStatus) -> None:
    counts = ", ".join(f"{name} {count}" for name, count in status.counts.items())
    console.print(
        f"run [bold]{status.run_id}[/] ({status.kind}): [bold]{status.state}[/], "
        f"{status.finished_members}/{status.total} ended ({counts}), {status.in_flight} in flight"
    )
    if status.cancel_reason:
        console.print(f"cancel: {status.cancel_reason}")
    if status.error:
        console.print(f"[red]error: {status.error}[/]")
