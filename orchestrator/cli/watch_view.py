"""The screen of ``orchestrator watch``: a bounded view of a run, whatever its size.

The run's state and counts, its budget against its limits, a strip of member ranges, a
histogram of durations, a row per running member and per recently ended one (each with a
compact timeline of its span within the run), and the latest events. Its size depends on
``rows`` and ``event_rows``, never on the number of members. Names, workers, errors and
reasons are shown with ``plain`` (never read as markup).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from itertools import islice

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from orchestrator.cli.render import OUTCOME_STYLE, plain
from orchestrator.cli.watch_state import DURATION_BUCKETS, Member, WatchState
from orchestrator.state.budget import Ledger
from orchestrator.state.events import (
    AgentEnd,
    AgentStart,
    Event,
    ModelTurn,
    ParallelLoopEnd,
    ParallelLoopStart,
    RunEnd,
    RunStart,
    ToolCallEnd,
    ToolCallStart,
)
from orchestrator.state.watch_feed import Snapshot

STATE_STYLE = {"succeeded": "green", "failed": "red", "cancelled": "magenta", "running": "cyan"}
TIMELINE_CELLS = 12
BAR_CELLS = 20
MEMBERS_TITLE = "members"
EVENTS_TITLE = "latest events"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}s" if value < 60 else f"{int(value // 60)}m{int(value % 60):02d}s"


def _bar(part: float, whole: float, cells: int = BAR_CELLS) -> str:
    filled = min(round(cells * part / whole), cells) if whole > 0 else 0
    return "[" + "#" * filled + "." * (cells - filled) + "]"


def _header(snap: Snapshot) -> Iterator[Text]:
    yield Text.assemble(
        ("run ", "bold"),
        (snap.run_id, "bold"),
        f"  {snap.kind}  ",
        (snap.state, STATE_STYLE.get(snap.state, "")),
        f"  {_seconds(snap.elapsed_s)}",
    )
    counts = "  ".join(f"{outcome} {count}" for outcome, count in snap.counts.items())
    yield Text(f"ended    {snap.ended_members}/{snap.total}: {counts}")
    if snap.cancel:
        yield plain(f"cancel:  {snap.cancel}", "magenta")
    if snap.error and snap.error != snap.cancel:
        yield plain(f"error:   {snap.error}", "red")


def _budget(ledger: Ledger) -> Text:
    parts = []
    if ledger.max_tokens is not None:
        used = ledger.spent_tokens
        parts.append(
            f"tokens {used:,}/{ledger.max_tokens:,} {_bar(used, ledger.max_tokens, 10)} "
            f"(+{ledger.reserved_tokens:,} reserved)"
        )
    if ledger.max_cost_usd is not None:
        cost = ledger.spent_usd
        parts.append(
            f"cost ${cost:.4f}/${ledger.max_cost_usd:.4f} {_bar(cost, ledger.max_cost_usd, 10)}"
        )
    if ledger.max_agents is not None:
        parts.append(f"agents {ledger.agents}/{ledger.max_agents}")
    if not parts:
        return Text("budget   no limits")
    return Text("budget   " + "  ".join([*parts, f"calls {ledger.calls}"]))


def _strip(state: WatchState) -> Iterator[Text]:
    strip = state.strip
    if strip.cells == 0:
        return
    per = f"{strip.total / strip.cells:.3g}/cell" if strip.cells < strip.total else "1/cell"
    yield Text(f"strip    {strip.text()} #0..#{strip.total - 1} {per}")
    yield Text(
        "         # ok  - skipped/cancelled  + some ended  > running  x error  . waiting",
        style="dim",
    )


def _durations(state: WatchState) -> Iterator[Text]:
    top = max(state.durations)
    for (_, label), count in zip(DURATION_BUCKETS, state.durations, strict=True):
        if count:
            yield Text(f"duration {label:>6} {_bar(count, top)} {count}")


def _cell(text: str) -> Text:
    """User text for a column that may give way: one line, cut with an ellipsis (a column
    that wraps is the one Rich narrows first; the text itself never wraps)."""
    cell = plain(" ".join(text.split()))
    cell.no_wrap = True
    cell.overflow = "ellipsis"
    return cell


def _timeline(member: Member, start: float, now: float) -> str:
    span = max(now - start, 1e-9)
    if member.started is None:
        return " " * TIMELINE_CELLS  # ended without running (skipped, cancelled in the queue)

    def cell(at: float) -> int:
        return min(max(int((at - start) / span * TIMELINE_CELLS), 0), TIMELINE_CELLS - 1)

    first = cell(member.started)
    last = cell(member.ended if member.ended is not None else now)
    head = "=" * (last - first) + (">" if member.ended is None else "=")
    return "." * first + head + " " * (TIMELINE_CELLS - last - 1)


def _members(state: WatchState, snap: Snapshot) -> Table:
    now = (snap.ended_ms if snap.ended_ms is not None else snap.now_ms) / 1000
    start = snap.created_ms / 1000
    shown = list(islice(state.running.values(), state.rows))
    title = f"{MEMBERS_TITLE}: {snap.in_flight} in flight, {len(state.running)} running"
    if len(state.running) > len(shown):
        title += f" ({len(shown)} longest shown)"
    title += f", last {len(state.ended)} ended"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("member", "agent", "state", "worker", "time", "timeline", "tokens"):
        # Labels, names and workers give way first when the screen is narrow (see ``_cell``).
        table.add_column(column, no_wrap=column not in ("member", "agent", "worker"))
    for member in [*shown, *reversed(state.ended)]:
        outcome = member.outcome or ("running " + member.tool).strip()
        table.add_row(
            _cell(member.label),
            _cell(member.name),
            plain(outcome, OUTCOME_STYLE.get(member.outcome or "", "cyan")),
            _cell(member.worker or "-"),
            _seconds(member.duration(now)),
            _timeline(member, start, now),
            str(member.tokens),
        )
    return table


def _detail(event: Event) -> str:
    if isinstance(event, RunStart):
        return f"{event.kind}, {event.total} members"
    if isinstance(event, ParallelLoopStart):
        return f"{len(event.loop_ids)} branches"
    if isinstance(event, AgentStart):
        return f"on {event.worker or '?'}"
    if isinstance(event, ModelTurn):
        text = f"turn {event.turn}, {event.usage.total_tokens} tokens"
        return text + (f", error: {event.error}" if event.error else "")
    if isinstance(event, ToolCallStart):
        return event.tool
    if isinstance(event, ToolCallEnd):
        return f"{event.tool} {event.status}" + (f": {event.error}" if event.error else "")
    if isinstance(event, AgentEnd):
        text = f"{event.outcome}, {event.usage.total_tokens} tokens"
        return text + (f": {event.error}" if event.error else "")
    if isinstance(event, ParallelLoopEnd):
        return f"selected {event.selected_loop_id or 'none'}"
    assert isinstance(event, RunEnd)
    return event.state


def _who(state: WatchState, event: Event) -> str:
    if isinstance(event, AgentStart | AgentEnd | ModelTurn | ToolCallStart | ToolCallEnd):
        return f"{event.name} {state.label(event)}"
    return ""


def _events(state: WatchState, snap: Snapshot) -> Table:
    title = f"{EVENTS_TITLE} ({state.seen} read)"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("at", no_wrap=True, justify="right")
    table.add_column("event", no_wrap=True)
    table.add_column("agent")
    table.add_column("detail")
    for event in state.events:
        at = f"+{max(event.ts - snap.created_ms / 1000, 0):.1f}s"
        table.add_row(at, event.type, _cell(_who(state, event)), _cell(_detail(event)))
    return table


def render_view(state: WatchState, snap: Snapshot) -> RenderableType:
    """The whole screen for ``state`` as of ``snap``."""
    lines: list[RenderableType] = [*_header(snap), _budget(snap.ledger)]
    lines += [*_strip(state), *_durations(state)]
    if state.missed:
        # The stream is bounded: say what the strip, durations and rows could not count.
        lost = f", {state.lost_ends} ends among them" if state.lost_ends else ""
        lines.append(Text(f"stream   {state.missed} events dropped unread{lost}", style="yellow"))
    return Group(*lines, _members(state, snap), _events(state, snap))


def as_text(renderable: RenderableType, width: int = 100) -> str:
    """``renderable`` as plain text (no colour, no control sequences), ``width`` wide."""
    buffer = io.StringIO()
    console = Console(
        file=buffer, width=width, color_system=None, force_terminal=False, no_color=True
    )
    console.print(renderable)
    return buffer.getvalue()
