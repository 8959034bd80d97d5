"""Framework agents served as agent functions by the test workers (ORCHESTRATOR_MODULES): a
pydantic-ai agent and an OpenAI Agents SDK agent, each with a tool, whose model is the
member's (the docs' framework guides show this module). Each framework is imported when its
agent first runs: a worker starts without loading it."""

from __future__ import annotations

from functools import cache
from typing import Any

from orchestrator import AgentContext, agent


# --8<-- [start:pydantic_ai]
@cache
def adder() -> Any:
    """The pydantic-ai agent, made once per worker process on first use."""
    from pydantic_ai import Agent

    made = Agent(instructions="Add the numbers you are given with the add tool.")

    @made.tool_plain
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    return made


@agent
def pydantic_adder(ctx: AgentContext, prompt: str) -> str:
    """The pydantic-ai agent above, on this member's model and budget."""
    return str(adder().run_sync(prompt, model=ctx.pydantic_ai_model()).output)


# --8<-- [end:pydantic_ai]


# --8<-- [start:openai_agents]
@cache
def sdk_adder() -> Any:
    """The Agents SDK agent, made once per worker process on first use."""
    from agents import Agent, function_tool

    @function_tool
    def add_numbers(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    return Agent(
        name="adder",
        instructions="Add the numbers you are given with the add_numbers tool.",
        tools=[add_numbers],
    )


@agent
def openai_agents_adder(ctx: AgentContext, prompt: str) -> str:
    """The Agents SDK agent above, on this member's model and budget."""
    from agents import RunConfig, Runner

    config = RunConfig(model=ctx.openai_agents_model(), tracing_disabled=True)
    return str(Runner.run_sync(sdk_adder(), prompt, run_config=config).final_output)


# --8<-- [end:openai_agents]
