"""Charts of the comparisons that read better as pictures, drawn from the tables of
``benchmarks/RESULTS.md`` (which the benchmark scripts wrote in the same run) into
``docs/benchmarks/*.png``. ``benchmarks/run_all.py`` calls it after writing RESULTS.md;
``python -m benchmarks.charts`` redraws them from the RESULTS.md there is.

Each chart sets a figure beside its baseline from the same run, never a figure alone."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
OUT = ROOT / "docs" / "benchmarks"
OURS, BASE = "#1f77b4", "#b0b0b0"


def table(text: str, heading: str) -> list[dict[str, str]]:
    """The first Markdown table after the line ``heading``, as one dict a row."""
    lines = text.splitlines()
    start = lines.index(heading)
    block: list[str] = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            block.append(line)
        elif block:
            break
    rows = block
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    return [
        dict(zip(header, (cell.strip() for cell in row.strip("|").split("|")), strict=True))
        for row in rows[2:]
    ]


def median(rows: list[dict[str, str]], column: str) -> float:
    return statistics.median(float(row[column].split()[0]) for row in rows)


def _pair(axis: Axes, labels: list[str], ours: list[float], base: list[float]) -> None:
    """Bars of ``ours`` beside ``base``, one pair a label, each bar with its value."""
    width = 0.38
    spots = range(len(labels))
    for offset, values, color in ((-width / 2, base, BASE), (width / 2, ours, OURS)):
        bars = axis.bar([spot + offset for spot in spots], values, width, color=color)
        axis.bar_label(bars, fmt="%.3g", fontsize=8)
    axis.set_xticks(list(spots), labels)
    axis.spines[["top", "right"]].set_visible(False)
    axis.margins(y=0.15)


SCALE_DEFAULT = "## Scale on the default layout (orchestrator worker) against a bare Celery chord"


def scale_chart(text: str) -> Path:
    """Map-reduce against a bare Celery chord on W1, W2, W3 and S1, on the layout
    ``orchestrator worker`` starts by default (medians of the repetitions)."""
    rows = {row["workload"]: row for row in table(text, SCALE_DEFAULT)}

    def pair(name: str) -> tuple[float, float]:
        return (
            float(rows[name]["map-reduce"].split()[0]),
            float(rows[name]["bare chord"].split()[0]),
        )

    figure, axes = plt.subplots(1, 3, figsize=(10, 3.4), gridspec_kw={"width_ratios": [1, 2, 1]})
    w1 = pair("W1 wall, s")
    _pair(axes[0], ["W1"], [w1[0]], [w1[1]])
    axes[0].set_title("W1 wall time, s (lower is better)", fontsize=9)
    w2, w3 = pair("W2 efficiency"), pair("W3 efficiency (nominal)")
    _pair(axes[1], ["W2", "W3"], [w2[0], w3[0]], [w2[1], w3[1]])
    axes[1].set_title("efficiency against the bound (higher is better)", fontsize=9)
    axes[1].set_ylim(0, 1.1)
    s1 = pair("S1 warm, s")
    _pair(axes[2], ["S1 warm"], [s1[0]], [s1[1]])
    axes[2].set_title("wall time, s (lower is better)", fontsize=9)
    figure.legend(
        handles=[Patch(color=c) for c in (BASE, OURS)],
        labels=["bare Celery chord", "map-reduce"],
        loc="upper center",
        ncol=2,
        frameon=False,
    )
    figure.tight_layout(rect=(0, 0, 1, 0.9))
    return _save(figure, "scale.png")


def efficiency_chart(text: str) -> Path:
    """Parallel efficiency: each round's wall time beside its ideal (the schedule's bound)."""
    rows = table(text, "## Parallel efficiency: 64 mappers, cap 8, 3 workers")
    figure, axis = plt.subplots(figsize=(6, 3.2))
    _pair(
        axis,
        [f"round {row['round']}" for row in rows],
        [float(row["wall (s)"]) for row in rows],
        [float(row["ideal (s)"]) for row in rows],
    )
    axis.set_ylabel("seconds")
    axis.set_title("64 mappers of 200 ms, cap 8: ideal (grey) and wall (blue)", fontsize=9)
    figure.tight_layout()
    return _save(figure, "efficiency.png")


def recovery_chart(text: str) -> Path:
    """Time to the result with nothing lost (baseline) and after a failure: a killed Redis
    primary (Sentinel) and a worker host cut off."""
    killed = table(text, "### Recovery from a killed primary (8 members of 1.5 s)")
    cut = table(text, "## Worker host cut off (network namespaces)")
    figure, axis = plt.subplots(figsize=(6, 3.2))
    _pair(
        axis,
        ["Redis primary killed", "worker host cut off"],
        [median(killed, "finished (s)"), median(cut, "cut: to result (s)")],
        [median(killed, "baseline (s)"), median(cut, "baseline (s)")],
    )
    axis.set_ylabel("seconds to the result (median)")
    axis.set_title("No failure (grey) and with the failure (blue)", fontsize=9)
    figure.tight_layout()
    return _save(figure, "recovery.png")


def _save(figure: Figure, name: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    # No date in the file, so that an unchanged chart stays the same bytes.
    figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(figure)
    return path


def main(results: Path = RESULTS) -> list[Path]:
    """Draw every chart from ``results``; returns the files written."""
    text = results.read_text()
    return [scale_chart(text), efficiency_chart(text), recovery_chart(text)]


if __name__ == "__main__":
    for written in main(Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS):
        print(written.relative_to(ROOT))
