"""Terminal rendering of results and statuses for the CLI and the demo.

Names, answers, errors and reasons come from clients and models, so they are shown as plain
text: never read as Rich markup (``[link=...]``, or a stray ``[/]`` that would end the command
with a ``MarkupError``), and with control characters shown escaped (``\\x1b``) instead of
reaching the terminal, where an escape sequence could rewrite the screen or a hyperlink.
"""

from __future__ import annotations

import re

from rich.console import Console
from rich.table import Table
from rich.text import Text

from orchestrator.models import RunStatus
from orchestrator.models.results import MapReduceResult, ParallelResult

OUTCOME_STYLE = {"ok": "green", "error": "red", "skipped": "yellow", "cancelled": "magenta"}
# C0 controls but tab and newline, DEL, and C1 controls (some terminals read 0x9b as CSI).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(text: str, style: str = "") -> Text:
    """``text`` as literal terminal text: no markup, control characters escaped."""
    return Text(_CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text), style=style)


def _clip(text: str, limit: int, tail: bool = False) -> Text:
    """``text`` on one line, at most ``limit`` characters: its start (or with ``tail`` its
    end) and an ellipsis for the rest. The cut falls between words, unless a word takes more
    than half the room."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return plain(text)
    room = limit - 1  # the ellipsis takes one
    if tail:
        kept = text[-room:]
        space = kept.find(" ")
        if text[-room - 1] != " " and 0 <= space < room // 2:
            kept = kept[space + 1 :]
        return plain("…" + kept)
    kept = text[:room]
    space = kept.rfind(" ")
    if text[room] != " " and space >= room // 2:
        kept = kept[:space]
    return plain(kept + "…")


def outputs_table(result: MapReduceResult, answer_chars: int = 70, tail: bool = False) -> Table:
    """A table of mapper outputs; long answers are cut to ``answer_chars`` from the start, or
    from the end with ``tail`` (where answers share a long opening, as echoes do)."""
    table = Table(title=f"Mapper outputs ({len(result.map_outputs)})")
    # Columns fold rather than end in "…": a name or id cut short cannot be told apart.
    for column in ("#", "agent", "outcome", "ms", "tokens", "answer or error"):
        table.add_column(column, overflow="fold")
    for index, output in enumerate(result.map_outputs):
        text = _clip(
            output.answer if output.succeeded() else output.error or "", answer_chars, tail
        )
        style = OUTCOME_STYLE.get(output.outcome, "")
        table.add_row(
            str(index),
            plain(output.name),
            plain(output.outcome, style),
            f"{output.duration_ms:.0f}",
            str(output.tokens.total_tokens),
            text,
        )
    return table


def branches_table(
    result: ParallelResult, answer_chars: int = 60, width: int | None = None
) -> Table:
    """One row per branch; the selected one is marked. Loop ids are never cut: they share
    their session id's 32 digits and differ at the end."""
    table = Table(title=plain(f"Branches of session {result.session_id}"))
    longest = max((len(outcome.loop_id) for outcome in result.outcomes), default=0)
    # On one line when the table still has room for the answers (at 80 columns it has): Rich
    # then shrinks the answers instead. On a narrower ``width`` the ids fold instead.
    whole = width is None or longest + 40 <= width
    for column in ("", "loop id", "outcome", "tokens", "answer or error"):
        table.add_column(column, overflow="fold", no_wrap=whole and column == "loop id")
    for outcome in result.outcomes:
        output = outcome.output
        text = _clip(output.answer if output.succeeded() else output.error or "", answer_chars)
        style = OUTCOME_STYLE.get(output.outcome, "")
        table.add_row(
            "*" if outcome.config_index == result.selected_index else "",
            plain(outcome.loop_id),
            plain(output.outcome, style),
            str(output.tokens.total_tokens),
            text,
        )
    return table


def print_status(console: Console, status: RunStatus) -> None:
    """The run's state and counts on one line, then its cancel reason and error if any."""
    counts = ", ".join(f"{name} {count}" for name, count in status.counts.items())
    in_group = f", group {status.group}" if status.group else ""
    console.print(
        Text.assemble(
            "run ",
            plain(status.run_id, "bold"),
            plain(f" ({status.kind}{in_group}): "),
            plain(status.state, "bold"),
            plain(
                f", {status.finished_members}/{status.total} ended ({counts}), "
                f"{status.in_flight} in flight"
            ),
        )
    )
    if status.writes_refused:
        console.print(plain(f"paused, Redis refuses writes: {status.writes_refused}", "yellow"))
    if status.cancel_reason:
        console.print(plain(f"cancel: {status.cancel_reason}"))
    if status.error:
        console.print(plain(f"error: {status.error}", "red"))
