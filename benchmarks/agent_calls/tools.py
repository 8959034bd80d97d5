"""Tool fan-out: one model turn asking for 8 tool calls of 100 ms.

In-process (the tool runner alone, async and sync tools) and end to end (an agent on a worker,
whose duration covers both model turns and the tool phase). Sequential runs of the same calls
are measured in the same run as the baseline.

Target: parallel wall <= 1.3x one call.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from benchmarks.agent_calls import bench_tools
from benchmarks.harness import cluster, write_section
from orchestrator import AgentSpec, ModelConfig, ToolPolicy
from orchestrator.models import ToolCall
from workers.execution.cancellation import CancelToken
from workers.tools.registry import ToolRegistry
from workers.tools.runner import ToolEvents, ToolRunner

CALLS, MS, ROUNDS = 8, 100, 5


def in_process(tool_name: str, count: int, mode: str) -> float:
    runner = ToolRunner(ToolRegistry.from_modules(["benchmarks.agent_calls.bench_tools"]))
    calls = [ToolCall(id=f"c{i}", name=tool_name, arguments={"ms": MS}) for i in range(count)]
    started = time.perf_counter()
    results = runner.run(calls, [tool_name], ToolPolicy(mode=mode), CancelToken(), ToolEvents())
    assert all(r.ok for r in results)
    return time.perf_counter() - started


def end_to_end(client, count: int, mode: str) -> float:  # type: ignore[no-untyped-def]
    turn = {"tool_calls": [{"name": "wait_async", "arguments": {"ms": MS}}] * count}
    spec = AgentSpec(
        name="fanout",
        model=ModelConfig(provider="scripted", options={"script": [turn, {"text": "done"}]}),
        tools=["wait_async"],
        tool_policy=ToolPolicy(mode=mode),
    )
    output = client.run_agent(spec, "go").result(60).output
    assert output.succeeded() and output.tool_calls == count
    return output.duration_ms / 1000


def measure(run) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """Median seconds of one call, 8 parallel and 8 sequential."""
    run(1, "parallel")  # warm-up
    one = statistics.median(run(1, "parallel") for _ in range(ROUNDS))
    parallel = statistics.median(run(CALLS, "parallel") for _ in range(ROUNDS))
    sequential = statistics.median(run(CALLS, "sequential") for _ in range(ROUNDS))
    return one, parallel, sequential


def main() -> float:
    rows = {
        "in-process, async tool": measure(lambda n, m: in_process("wait_async", n, m)),
        "in-process, sync tool": measure(lambda n, m: in_process("wait_sync", n, m)),
    }
    os.environ["ORCHESTRATOR_TOOL_MODULES"] = bench_tools.__name__
    with cluster(1, 8) as c:
        rows["end to end, agent on a worker"] = measure(lambda n, m: end_to_end(c.client, n, m))
    worst = max(parallel / one for one, parallel, _ in rows.values())
    verdict = "met" if worst <= 1.3 else "NOT met"
    table = "\n".join(
        f"| {name} | {one:.3f} | {par:.3f} | {seq:.3f} | {par / one:.2f} | {seq / one:.2f} |"
        for name, (one, par, seq) in rows.items()
    )
    write_section(
        "Tool fan-out: 8 calls of 100 ms in one turn",
        f"""
Median of {ROUNDS} rounds each. End to end, the agent's duration also covers its two
(zero-latency, scripted) model turns and the tool events.

| measured | 1 call (s) | 8 parallel (s) | 8 sequential (s) | parallel / 1 | sequential / 1 |
| --- | --- | --- | --- | --- | --- |
{table}

**Worst parallel / one call: {worst:.2f}** (target <= 1.3): {verdict}.
""",
    )
    print(f"tool fan-out worst ratio {worst:.2f} {rows}")
    return worst


if __name__ == "__main__":
    sys.exit(0 if main() <= 1.3 else 1)
