"""The ``watch`` and ``runs`` commands of ``orchestrator``: their arguments and what they do."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from orchestrator.cli.render import plain
from orchestrator.cli.watch import Watcher, follow
from orchestrator.cli.watch_view import STATE_STYLE
from orchestrator.client import Client
from orchestrator.state.run_index import RunSummary, age_text, recent_runs

COMMANDS = ("watch", "runs")


def add_commands(commands: Any) -> None:
    """Add ``watch`` and ``runs`` to the subcommands ``commands`` (an argparse subparsers
    action)."""
    watch = commands.add_parser(
        "watch",
        help="a live view of a run until it ends (exit 0 when it succeeded)",
        description="A live view of a run: state, budget, members, latest events. When stdout "
        "is not a terminal, prints the final screen as plain text once the run ends.",
    )
    watch.add_argument("run_id", help="the run's id (printed by submit)")
    watch.add_argument("--once", action="store_true", help="print the view now and return")
    watch.add_argument(
        "--rows", type=_positive, default=5, help="running members shown, and as many ended"
    )
    watch.add_argument("--events", type=_positive, default=6, help="latest events shown")
    watch.add_argument("--refresh-s", type=float, default=0.5, help="seconds between redraws")
    runs = commands.add_parser("runs", help="list recent runs, newest first")
    runs.add_argument("--limit", type=_positive, default=20, help="runs listed at most")
    runs.add_argument("--output", choices=("table", "json"), default="table")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def run_command(args: argparse.Namespace, client: Client, out: Console) -> int:
    """Run ``watch`` or ``runs``; returns the exit code."""
    if args.command == "runs":
        return _runs(args, client, out)
    run_id = client.get_run(args.run_id).id  # RunNotFoundError for an unknown or malformed id
    watcher = Watcher(client.redis, run_id, rows=args.rows, event_rows=args.events)
    if args.once:
        watcher.catch_up()
        out.print(watcher.view())
        return 0
    try:
        if out.is_terminal:
            # Frames are cut to the terminal's height; the last one is printed whole.
            with Live(console=out, auto_refresh=False, transient=True) as live:
                final = follow(
                    watcher, lambda view: live.update(view, refresh=True), args.refresh_s
                )
        else:
            final = follow(watcher, None, args.refresh_s)
        out.print(final)
    except KeyboardInterrupt:
        return 130
    return 0 if watcher.snapshot.state == "succeeded" else 1


RUNS_HEADER = ("id", "kind", "state", "ok/error/skipped/cancelled of total", "age")


def runs_lines(summaries: list[RunSummary]) -> list[Text]:
    """A header and one line per run: full id, kind, state, ended members by outcome of the
    total, age. Columns are as wide as their longest cell, so nothing is ever cut."""
    rows = [
        (
            run.run_id,
            run.kind,
            run.state,
            f"{'/'.join(str(count) for count in run.counts.values())} of {run.total}",
            age_text(run.age_s),
        )
        for run in summaries
    ]
    widths = [max(len(row[i]) for row in [RUNS_HEADER, *rows]) for i in range(len(RUNS_HEADER))]
    lines = [Text("  ".join(h.ljust(w) for h, w in zip(RUNS_HEADER, widths, strict=True)))]
    lines[0].stylize("bold")
    for row in rows:
        line = Text()
        for column, (cell, width) in enumerate(zip(row, widths, strict=True)):
            right = column >= 3  # counts and age read best aligned on their last digit
            padded = cell.rjust(width) if right else cell.ljust(width)
            line.append_text(plain(padded, STATE_STYLE.get(cell, "") if column == 2 else ""))
            line.append("  " if column < len(row) - 1 else "")
        lines.append(line)
    return lines


def _runs(args: argparse.Namespace, client: Client, out: Console) -> int:
    summaries = recent_runs(client.redis, args.limit)
    if args.output == "json":
        print(json.dumps([summary.as_json() for summary in summaries]))
        return 0
    if not summaries:
        out.print("no runs")
        return 0
    for line in runs_lines(summaries):
        # soft_wrap: longer than the terminal rather than cut, an id is only useful whole.
        out.print(line, soft_wrap=True)
    return 0
