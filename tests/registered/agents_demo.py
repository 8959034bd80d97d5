"""Agent functions for the tests, served by the test workers (ORCHESTRATOR_MODULES).

Some record what they did in Redis (under ``test:``), so that tests can see across worker
processes which steps ran and how often.
"""

from __future__ import annotations

import os
from typing import Any

import redis

from orchestrator import AgentContext, AgentSpec, ModelConfig, agent


def _redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ["ORCHESTRATOR_REDIS_URL"])


@agent
def two_calls(ctx: AgentContext, prompt: str) -> dict[str, Any]:
    """Two model calls, the second on the first's answer; returns a JSON value."""
    first = ctx.complete(f"draft: {prompt}")
    second = ctx.complete(f"refine: {first}", max_output_tokens=64)
    return {"draft": first, "final": second, "item": ctx.item, "member": ctx.member}


@agent
def until_denied(ctx: AgentContext, prompt: str) -> str:
    """Calls the model until the budget refuses a call (that refusal ends the member)."""
    answers = []
    while True:
        answers.append(ctx.complete(f"{prompt} #{len(answers)}"))


@agent
def adds(ctx: AgentContext, prompt: str) -> str:
    """Calls the registered ``add`` tool, then the model on its result."""
    total = ctx.call_tool("add", a=2, b=3)
    return ctx.complete(f"the sum is {total}")


@agent(name="leaks")
def leaking(ctx: AgentContext, prompt: str) -> str:
    """Raises with the worker's key in its message (which must never be stored)."""
    raise RuntimeError(f"could not call with key {os.environ.get('OPENAI_API_KEY', '')}")


@agent
def steps(ctx: AgentContext, prompt: str) -> str:
    """Three model calls, checkpointing after each: a redelivered member resumes after the
    last step it checkpointed. Each execution's start is counted under
    ``test:steps:{prompt}:starts``."""
    _redis().incr(f"test:steps:{prompt}:starts")
    done: list[str] = list(ctx.resumed_state or [])
    for step in range(len(done), 3):
        done.append(ctx.complete(f"{prompt} step {step}"))
        ctx.checkpoint(done)
    return " | ".join(done)


@agent
def ignores_cancel(ctx: AgentContext, prompt: str) -> str:
    """Catches the stop of its model call and returns as if nothing happened."""
    try:
        return ctx.complete(prompt)
    except Exception:
        return "carried on"


def _scripted(name: str, **options: Any) -> AgentSpec:
    model = ModelConfig(provider="scripted", options=options, max_output_tokens=16)
    return AgentSpec(name=name, model=model)


@agent
def fan_out(ctx: AgentContext, prompt: str) -> str:
    """One call of its own, then a child map-reduce of ten items (two at a time); answers
    with the child's reduced answer."""
    ctx.complete(f"plan: {prompt}", max_output_tokens=16)
    result = ctx.map_reduce(
        "Look at",
        [f"{prompt}-{i}" for i in range(10)],
        _scripted("child-mapper", latency_ms=20),
        _scripted("child-reducer"),
        max_concurrent=2,
    )
    return result.reduced_answer


@agent
def waits_on_child(ctx: AgentContext, prompt: str) -> str:
    """A child single-agent run on the scripted model (100 ms); answers with its answer."""
    child = ctx.run_agent(_scripted("child", latency_ms=100), f"child of {ctx.item or prompt}")
    return child.output.answer


@agent
def slow_child(ctx: AgentContext, prompt: str) -> str:
    """A child single-agent run on the test's slow server (endpoint ``slow``)."""
    spec = AgentSpec(name="slow-child", model=ModelConfig(provider="openai", model="slow",
                                                          endpoint="slow"))  # fmt: skip
    return ctx.run_agent(spec, f"child of {prompt}").output.answer


@agent
def nested(ctx: AgentContext, prompt: str) -> str:
    """``prompt`` is a depth: at 0 one model call, else a child run of this agent one level
    down. Answers with the leaf's answer."""
    depth = int(prompt)
    if depth == 0:
        return ctx.complete("leaf")
    spec = AgentSpec(name=f"nested-{depth - 1}", agent="nested",
                     model=ModelConfig(provider="scripted", max_output_tokens=16))  # fmt: skip
    return ctx.run_agent(spec, str(depth - 1)).output.answer


# --8<-- [start:triage]
@agent
def triage(ctx: AgentContext, prompt: str) -> dict[str, Any]:
    """Label a ticket, then draft a reply to it: two model calls, a JSON answer."""
    label = ctx.complete(f"Label as bug, question or request: {prompt}", max_output_tokens=8)
    reply = ctx.complete(f"Draft a two-line reply to this {label.strip()}: {prompt}")
    return {"label": label.strip(), "reply": reply}


# --8<-- [end:triage]


# --8<-- [start:research]
@agent
def research(ctx: AgentContext, prompt: str) -> str:
    """Split a question, answer the parts in a child map-reduce on this agent's model, and
    sum up. The child spends this run's budget and is cancelled with it."""
    parts = [f"{prompt} (part {i})" for i in range(3)]  # a real agent asks its model
    helper = AgentSpec(name="helper", model=ctx.spec.model)
    child = ctx.map_reduce("Answer briefly", parts, helper, helper, max_concurrent=3)
    return ctx.complete(f"Sum up for {prompt!r}: {child.reduced_answer}")


# --8<-- [end:research]
