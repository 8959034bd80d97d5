"""Generated but realistic traces of agent model calls, for the cache governor's benchmark.

A trace is the Anthropic requests of one workload in start order: each call's blocks (kind,
content hash, tokens), when it starts and how long it takes, and the conversation (one agent
run) it belongs to. Content is named, not written: two blocks with the same hash are the same
text. Token counts are drawn from ranges typical of each workload.

(a) ``agent_loop``: a long system prompt and eight tools, a user task, then ten turns each
    appending the model's tool calls (one to three) and their results.
(b) ``map_reduce``: 200 mappers sharing instructions, each on its own item, 16 at a time.
(c) ``rag``: a system prompt and tools, then a retrieved passage that changes every call,
    then the question.
(d) ``sparse``: one call every 6 to 9 minutes on the same long instructions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

MODEL = "claude-sonnet-4-5"


@dataclass(frozen=True)
class TraceBlock:
    kind: str
    hash: str
    tokens: int


@dataclass
class TraceCall:
    """One request: when it starts, how long it takes, its conversation and blocks."""

    at: float
    duration: float
    conversation: str
    blocks: list[TraceBlock]
    first_token: float = 1.0
    """Seconds to the response's first token: Anthropic makes an entry readable once the
    response that wrote it has begun."""
    anchors: dict[str, int] = field(default_factory=dict)
    """Structural positions for static placements: ``tools``, ``system``, ``task`` (the
    first user message), ``previous`` (the previous call's last block), ``last``."""

    @property
    def previous_end(self) -> int | None:
        return self.anchors.get("previous")


def _anchored(call: TraceCall, previous: int | None) -> TraceCall:
    # Time to first token grows with the prompt (prefill) on top of a fixed latency.
    tokens = sum(block.tokens for block in call.blocks)
    call.first_token = min(call.duration, 0.4 + tokens / 20_000)
    kinds = [block.kind for block in call.blocks]
    anchors = {"last": len(kinds) - 1}
    if "tool" in kinds:
        anchors["tools"] = max(i for i, kind in enumerate(kinds) if kind == "tool")
    if "system" in kinds:
        anchors["system"] = kinds.index("system")
    if "user" in kinds:
        anchors["task"] = kinds.index("user")
    if previous is not None:
        anchors["previous"] = previous
    call.anchors = anchors
    return call


def _head(tools: int, tool_tokens: int, system_tokens: int, name: str) -> list[TraceBlock]:
    blocks = [TraceBlock("tool", f"{name}-tool{i}", tool_tokens) for i in range(tools)]
    return [*blocks, TraceBlock("system", f"{name}-system", system_tokens)]


def agent_loop(seed: int, runs: int = 30, turns: int = 10) -> list[TraceCall]:
    """(a) Agent runs of ``turns`` model calls with a growing context."""
    rng = random.Random(seed)
    calls: list[TraceCall] = []
    start = 0.0
    for run in range(runs):
        start += rng.uniform(20, 90)
        blocks = [
            *_head(8, 200, 3000, "loop"),
            TraceBlock("user", f"task{run}", rng.randint(150, 400)),
        ]
        at, previous = start, None
        for turn in range(turns):
            duration = rng.uniform(3, 8)
            calls.append(_anchored(TraceCall(at, duration, f"loop{run}", list(blocks)), previous))
            previous = len(blocks) - 1
            if turn == turns - 1:
                break
            uses = rng.randint(1, 3)  # the model's tool calls, then one result each
            blocks += [
                TraceBlock("assistant.tool_use", f"use{run}.{turn}.{k}", 80) for k in range(uses)
            ]
            blocks += [
                TraceBlock("user.tool_result", f"res{run}.{turn}.{k}", rng.randint(300, 1500))
                for k in range(uses)
            ]
            at += duration + rng.uniform(0.5, 3)
    return sorted(calls, key=lambda call: call.at)


def map_reduce(seed: int, mappers: int = 200, concurrency: int = 16) -> list[TraceCall]:
    """(b) One map-reduce: mappers on shared instructions, each with its own item."""
    rng = random.Random(seed)
    free_at = [0.0] * concurrency
    calls = []
    for item in range(mappers):
        slot = min(range(concurrency), key=lambda s: free_at[s])
        at = free_at[slot] + rng.uniform(0.05, 0.3)
        duration = rng.uniform(4, 10)
        free_at[slot] = at + duration
        blocks = [
            TraceBlock("system", "mapper-instructions", 2500),
            TraceBlock("user", f"item{item}", rng.randint(300, 1200)),
        ]
        calls.append(_anchored(TraceCall(at, duration, f"mapper{item}", blocks), None))
    return sorted(calls, key=lambda call: call.at)


def rag(seed: int, calls: int = 300) -> list[TraceCall]:
    """(c) Retrieval-augmented calls: a new passage every call."""
    rng = random.Random(seed)
    trace, at = [], 0.0
    for index in range(calls):
        at += rng.expovariate(1 / 10)
        blocks = [
            *_head(4, 150, 1800, "rag"),
            TraceBlock("user.text", f"passage{index}", rng.randint(1500, 3000)),
            TraceBlock("user.text", f"question{index}", rng.randint(50, 150)),
        ]
        call = TraceCall(at, rng.uniform(2, 6), f"rag{index}", blocks)
        trace.append(_anchored(call, None))
    return trace


def sparse(seed: int, calls: int = 40) -> list[TraceCall]:
    """(d) One call every 6 to 9 minutes: longer than the 5-minute lifetime."""
    rng = random.Random(seed)
    trace, at = [], 0.0
    for index in range(calls):
        at += rng.uniform(360, 540)
        blocks = [
            TraceBlock("system", "sparse-instructions", 4000),
            TraceBlock("user", f"ask{index}", rng.randint(100, 300)),
        ]
        trace.append(_anchored(TraceCall(at, rng.uniform(3, 8), f"sparse{index}", blocks), None))
    return trace


TRACES = {
    "(a) agent loop, 10 turns": agent_loop,
    "(b) map-reduce, 200 mappers": map_reduce,
    "(c) retrieval, passage changes every call": rag,
    "(d) sparse, 6-9 min apart": sparse,
}
