"""Framework agents served as agent functions by the test workers (ORCHESTRATOR_MODULES): a
pydantic-ai agent and an OpenAI Agents SDK agent, each with a tool, whose model is the
member's (the docs' framework guides show this module)."""

from __future__ import annotations

from agents import Agent as SdkAgent
from agents import RunConfig, Runner, function_tool
from pydantic_ai import Agent

from orchestrator import AgentContext, agent

# --8<-- [start:pydantic_ai]
adder = Agent(instructions="Add the numbers you are given with the add tool.")


@adder.tool_plain
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@agent
def pydantic_adder(ctx: AgentContext, prompt: str) -> str:
    """The pydantic-ai agent above, on this member's model and budget."""
    return adder.run_sync(prompt, model=ctx.pydantic_ai_model()).output


# --8<-- [end:pydantic_ai]


# --8<-- [start:openai_agents]
@function_tool
def add_numbers(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


sdk_adder = SdkAgent(
    name="adder",
    instructions="Add the numbers you are given with the add_numbers tool.",
    tools=[add_numbers],
)


@agent
def openai_agents_adder(ctx: AgentContext, prompt: str) -> str:
    """The Agents SDK agent above, on this member's model and budget."""
    config = RunConfig(model=ctx.openai_agents_model(), tracing_disabled=True)
    result = Runner.run_sync(sdk_adder, prompt, run_config=config)
    return str(result.final_output)


# --8<-- [end:openai_agents]
