"""How much of a token budget a run can use, and whether it ever passes it.

The demo's workload (its mapper and reducer, its inbox items repeated to 400) at cap 20 on two
workers. The baseline round runs without a budget and measures what the whole run uses; the
budget rounds then give it half of that as ``max_tokens``, so that the run must stop admitting
midway. Measured per round: the share of ``max_tokens`` the run spent by its end (target:
>= 0.9) and the overshoot (spent past ``max_tokens``; target: none in any round). Rounds run
with the demo's output limit (256 tokens a mapper) and with the default (4096), which a call
must also reserve: the second shows what a loose output limit costs near the end of a budget.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from benchmarks.harness import Cluster, cluster, write_section
from orchestrator import AgentSpec, Budget, MapReduceResult
from orchestrator.cli.demo import DEMO_TASK, SAMPLE_ITEMS, demo_specs

ITEMS = [f"{SAMPLE_ITEMS[i % len(SAMPLE_ITEMS)]} (#{i})" for i in range(400)]
CAP = 20
ROUNDS = 3


@dataclass
class Round:
    limit: int
    spent: int
    ran: int
    reducer: str

    @property
    def share(self) -> float:
        return self.spent / self.limit

    @property
    def overshoot(self) -> int:
        return max(0, self.spent - self.limit)


def run(bench: Cluster, mapper: AgentSpec, reducer: AgentSpec, budget: Budget) -> Round:
    handle = bench.client.map_reduce(DEMO_TASK, ITEMS, mapper, reducer, CAP, budget=budget)
    result: MapReduceResult = handle.result(timeout=600)
    outputs = [*result.map_outputs, *([result.reducer_output] if result.reducer_output else [])]
    reported = sum(o.tokens.total_tokens for o in outputs)
    ledger = handle.budget()
    if budget.max_tokens is not None and reported != ledger.spent_tokens:
        raise RuntimeError(f"outputs report {reported} tokens, the ledger {ledger.spent_tokens}")
    ran = sum(o.outcome == "ok" for o in result.map_outputs)
    reducer_outcome = result.reducer_output.outcome if result.reducer_output else "none"
    return Round(budget.max_tokens or 0, reported, ran, reducer_outcome)


def with_output_limit(spec: AgentSpec, limit: int) -> AgentSpec:
    model = spec.model.model_copy(update={"max_output_tokens": limit})
    return spec.model_copy(update={"model": model})


def table(rounds: list[Round]) -> str:
    lines = [
        "| round | max_tokens | spent | share | overshoot | mappers run | reducer |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n, r in enumerate(rounds, 1):
        lines.append(
            f"| {n} | {r.limit} | {r.spent} | {r.share:.3f} | {r.overshoot} | {r.ran} "
            f"| {r.reducer} |"
        )
    return "\n".join(lines)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f} - {max(values):.3f})"


def main() -> float:
    mapper, reducer = demo_specs()
    with cluster(2, CAP) as bench:
        whole = run(bench, mapper, reducer, Budget())
        limit = whole.spent // 2
        demo_rounds = [run(bench, mapper, reducer, Budget(max_tokens=limit)) for _ in range(ROUNDS)]
        loose = with_output_limit(mapper, 4096)
        loose_rounds = [run(bench, loose, reducer, Budget(max_tokens=limit)) for _ in range(ROUNDS)]
    share = statistics.median(r.share for r in demo_rounds)
    overshoots = [r.overshoot for r in demo_rounds + loose_rounds]
    body = f"""
{__doc__.strip()}

Baseline (no budget): the whole run used {whole.spent} tokens ({whole.ran} mappers and the
reducer); the budget rounds get `max_tokens={limit}`.

With the demo's output limit (mapper `max_output_tokens=256`): share of `max_tokens` spent,
median {spread([r.share for r in demo_rounds])}; target >= 0.9.

{table(demo_rounds)}

With the default output limit (`max_output_tokens=4096`): share
{spread([r.share for r in loose_rounds])}.

{table(loose_rounds)}

Overshoot in every round: {max(overshoots)} tokens at most (target: none). A reducer that
is `skipped` did not fit in what the mappers left; the run then ends with their summaries.
"""
    write_section("Usable budget", body)
    print(f"budget share {share:.3f}, overshoot {max(overshoots)}")
    return share if max(overshoots) == 0 else 0.0


if __name__ == "__main__":
    main()
