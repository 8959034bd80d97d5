"""Tokens per minute: a shared ``tpm`` pool against a provider that enforces its limit with 429s.

200 calls of about 2,000 tokens each (a 7,600-character prompt, 100 output tokens) from a
map-reduce on 3 workers x 8 threads (cap 24), against a local server speaking the OpenAI wire
format (``benchmarks/limits/tpm_server.py``) that takes at most ``LIMIT`` tokens in any 60 s and
refuses a request past it with a 429 and OpenAI's ``x-ratelimit-reset-*`` headers. Three
configurations, each on fresh workers:

- ``tpm``: the pool ``{"tpm": LIMIT}``: each call reserves its upper bound in the shared window
  and waits, holding nothing, until it fits;
- ``pause only``: ``{"max_concurrent": 24}`` without ``tpm``: the calls go, and a 429's reset
  headers pause the pool for every worker;
- ``no pool``: nothing configured: every worker retries its own 429s.

For each: the 429s the server sent, the calls that failed (their retries used up), the busiest
60 s of the server's window, and the tokens per minute achieved: the tokens the server took,
divided by the minutes of its window the run occupied (from the first request it took to the
last, plus the 60 s the last one counts for). Target with ``tpm``: no 429 and at least 0.9 of
the limit.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

from benchmarks.harness import cluster, write_section
from benchmarks.limits.tpm_server import TokenLimitedServer
from orchestrator import AgentSpec, ModelConfig

CALLS = 200
# 200 calls of 2,008 tokens are 401,600 tokens: at 200,000 a minute they need three minutes
# of the limit whatever the client does. At 210,000 two minutes can hold them (a call in
# flight holds its bound, about 8,000, until it settles to its 2,008), so tokens per minute
# over the run can reach the limit.
LIMIT = 210_000
PROMPT_CHARS = 7_600  # 1,900 tokens by the server's count
OUTPUT_TOKENS = 100
WORKERS, THREADS = 3, 8
MODEL = "bench-tpm"


@dataclass
class Outcome:
    name: str
    refused: int
    failed: int
    taken: int
    busiest: int
    per_minute: float
    wall_s: float


def run(name: str, pools: dict[str, dict[str, int]]) -> Outcome:
    api = TokenLimitedServer(limit=LIMIT, window_s=60.0, delay_s=0.2)
    env = {**api.worker_env(), "ORCHESTRATOR_PROVIDER_LIMITS": json.dumps(pools)}
    try:
        with cluster(WORKERS, THREADS, worker_env=env) as bench:
            model = ModelConfig(
                provider="openai",
                model=MODEL,
                endpoint="limited",
                max_output_tokens=OUTPUT_TOKENS,
            )
            items = [f"{i:03d} " + "x" * PROMPT_CHARS for i in range(CALLS)]
            started = time.monotonic()
            handle = bench.client.map_reduce(
                "Read", items, AgentSpec(name="m", model=model), AgentSpec(name="r"), 24
            )
            result = handle.result(1800)
            wall_s = time.monotonic() - started
    finally:
        api.close()
    taken = sum(entry.tokens for entry in api.accepted)
    span_s = api.accepted[-1].at - api.accepted[0].at if api.accepted else 0.0
    failed = sum(1 for output in result.map_outputs if not output.succeeded())
    return Outcome(
        name=name,
        refused=api.refused,
        failed=failed,
        taken=taken,
        busiest=api.busiest_window(),
        per_minute=taken / ((span_s + 60.0) / 60.0),
        wall_s=wall_s,
    )


def main() -> bool:
    outcomes = [
        run("tpm", {f"openai:{MODEL}": {"tpm": LIMIT}}),
        run("pause only", {f"openai:{MODEL}": {"max_concurrent": 24}}),
        run("no pool", {}),
    ]
    lines = [
        f"{CALLS} calls of about 2,000 tokens (the server counts {PROMPT_CHARS // 4:,} prompt + "
        f"{OUTPUT_TOKENS} output tokens a call), {WORKERS} workers x {THREADS} threads, cap 24, "
        f"against a local OpenAI-wire server that takes at most {LIMIT:,} tokens in any 60 s "
        "and answers a request past it with a 429 and `x-ratelimit-reset-tokens` (no "
        "`retry-after`); 4 retries per call. Tokens per minute achieved = tokens taken / "
        "(first to last request taken + 60 s): the minutes of the server's window the run "
        f"occupied. At {LIMIT:,} a minute, two minutes can hold the calls' 401,600 tokens. "
        'One run of each configuration: `tpm` is the pool `{"tpm": LIMIT}`; `pause only` a '
        "pool of `max_concurrent` 24 without `tpm` (a 429's reset headers pause it for every "
        "worker); `no pool` nothing configured (each worker retries its own 429s). A failed "
        "call used its 4 retries; its tokens were never taken.",
        "",
        "| configuration | 429s | failed calls | tokens taken | busiest 60 s | minutes of the "
        "limit used (fewest possible) | tokens per minute achieved | of the limit | wall time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.name} | {o.refused} | {o.failed} | {o.taken:,} | {o.busiest:,} | "
            f"{o.taken / o.per_minute:.2f} ({math.ceil(o.taken / LIMIT)}) | "
            f"{o.per_minute:,.0f} | {o.per_minute / LIMIT:.2f} | {o.wall_s:.0f} s |"
        )
    with_tpm = outcomes[0]
    met = with_tpm.refused == 0 and with_tpm.failed == 0 and with_tpm.per_minute >= 0.9 * LIMIT
    lines += [
        "",
        f"Target with `tpm` (no 429, at least 0.9 of the limit): {'met' if met else 'missed'}.",
    ]
    write_section("Tokens per minute: a shared tpm pool against 429s", "\n".join(lines))
    for o in outcomes:
        print(o)
    return met


if __name__ == "__main__":
    main()
