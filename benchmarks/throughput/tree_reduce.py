"""The tree reduce on 20,000 items: a map-reduce of zero-latency scripted mappers whose
summaries are about four times the reducer's input budget at the default context window
(128,000 tokens, 80% of it for input).

Measured from the run's events: the reduce phase (from the last mapper's end, where the chord
body starts, to the run's end), of which the reducer's own execution (its start to the run's
end); the number of reducer calls (partial reducers and the top one) and of levels; the
largest reducer prompt in tokens against the input budget, and what the one prompt over every
summary would have taken. Target: every reducer call within the input budget.

``python -m benchmarks.throughput.tree_reduce`` runs the issue's workload and writes RESULTS.md;
``--items N`` and ``--context-window N`` make a reduced run that only prints its figures (a
window of 16,000 tokens makes 2,000 items a tree too).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from benchmarks.harness import cluster, write_section
from orchestrator import AgentSpec, ModelConfig
from orchestrator.models.results import MapReduceResult
from orchestrator.state.events import AgentEnd, AgentStart, Event, ModelTurn, RunEnd
from orchestrator.tokens import estimate_tokens
from workers.kinds.reduce_prompts import INPUT_SHARE, reducer_prompt

ITEMS = 20_000
WINDOW = ModelConfig().context_window
CAP, WORKERS, CONCURRENCY = 16, 2, 8
TASK = "Summarise"


@dataclass
class Figures:
    items: int
    window: int
    reduce_s: float
    reducer_s: float
    calls: int
    levels: int
    largest: int
    one_prompt: int

    @property
    def budget(self) -> int:
        return int(self.window * INPUT_SHARE)

    @property
    def fits(self) -> bool:
        return self.largest <= self.budget


def measure(items: int, window: int) -> Figures:
    with cluster(WORKERS, CONCURRENCY) as bench:
        mapper = AgentSpec(name="mapper", model=ModelConfig(provider="scripted"))
        reducer = AgentSpec(
            name="reducer", model=ModelConfig(provider="scripted", context_window=window)
        )
        documents = [f"document {i}" for i in range(items)]
        handle = bench.client.map_reduce(TASK, documents, mapper, reducer, max_concurrent=CAP)
        result: MapReduceResult = handle.result(timeout=3600)
        # The stream keeps the last 10,000 events: the reduce's and the last mappers'.
        events = list(handle.events(follow=False))
    assert result.reducer_output is not None and result.reducer_output.outcome == "ok"
    return figures(items, window, result, events)


def figures(items: int, window: int, result: MapReduceResult, events: list[Event]) -> Figures:
    mapper_ends = [e.ts for e in events if isinstance(e, AgentEnd) and e.index is not None]
    reducer_start = next(
        e.ts for e in events if isinstance(e, AgentStart) and e.index is None and e.part is None
    )
    run_end = next(e.ts for e in events if isinstance(e, RunEnd))
    turns = [e for e in events if isinstance(e, ModelTurn) and e.name.startswith("reducer")]
    parts = {e.part for e in events if isinstance(e, AgentEnd) and e.part is not None}
    levels = len({part.split(".")[0] for part in parts if part}) + 1
    return Figures(
        items=items,
        window=window,
        reduce_s=run_end - max(mapper_ends),
        reducer_s=run_end - reducer_start,
        calls=len(turns),
        levels=levels,
        largest=max(t.usage.input_tokens for t in turns),
        one_prompt=estimate_tokens(reducer_prompt(TASK, result.map_outputs)),
    )


def table(f: Figures) -> str:
    rows = [
        ("items", f"{f.items:,}"),
        ("reducer context window (tokens)", f"{f.window:,}"),
        ("input budget (80%, tokens)", f"{f.budget:,}"),
        ("one prompt over every summary (tokens)", f"{f.one_prompt:,}"),
        ("reducer calls (partial + top)", str(f.calls)),
        ("levels (partial levels + top)", str(f.levels)),
        (
            "largest reducer prompt (tokens)",
            f"{f.largest:,} ({f.largest / f.budget:.2f} of budget)",
        ),
        ("reduce phase: last mapper end to run end (s)", f"{f.reduce_s:.2f}"),
        ("of which the reducer's execution (s)", f"{f.reducer_s:.2f}"),
    ]
    lines = ["| measure | value |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def main(items: int = ITEMS, window: int = WINDOW) -> bool:
    f = measure(items, window)
    verdict = "met" if f.fits else "NOT met"
    window_text = "the default" if window == WINDOW else f"a {window:,}-token"
    body = f"""
A map-reduce of {f.items:,} zero-latency scripted mappers (cap {CAP}, {WORKERS} workers x
{CONCURRENCY} threads) and a scripted reducer with {window_text} context window: the summaries
do not fit its input budget, so they are reduced as a tree. Figures from the run's events.

{table(f)}

**Every reducer call within the input budget** (target): {verdict}.
"""
    print(body)
    if (items, window) == (ITEMS, WINDOW):
        write_section(f"Tree reduce: {ITEMS:,} items", body)
    return f.fits


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=ITEMS)
    parser.add_argument("--context-window", type=int, default=WINDOW)
    arguments = parser.parse_args()
    sys.exit(0 if main(arguments.items, arguments.context_window) else 1)
