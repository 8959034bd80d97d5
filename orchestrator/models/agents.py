"""What a client says an agent is: its model (``ModelConfig``, checked against the provider
names the workers implement), its spec (``AgentSpec``) and a run's ``Budget``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator.agents import AGENT_NAME
from orchestrator.models.cache_records import CacheMode
from orchestrator.models.schemas import OUTPUT_SCHEMA_OPTION, output_schema_of
from orchestrator.plans import PlanMode
from orchestrator.plans.agent_ids import check_agent_id
from orchestrator.tools import ToolPolicy

WORKER_OWNED_OPTIONS = frozenset({"base_url", "api_key_env"})
"""Options only a worker's own configuration may set (its endpoints)."""
REQUEST_OPTIONS = frozenset(
    {
        # Would rewrite the request: another model than ModelConfig.model (whose price and pool
        # apply to the call), and the SDKs' extra HTTP headers (OpenAI-Project, Authorization),
        # query parameters and body fields.
        "model",
        "extra_headers",
        "extra_query",
        "extra_body",
        # Would make the provider act on the key's account beyond one model call: hosted tools
        # (remote MCP servers by URL, search over the account's files, code execution; an
        # agent's tools are the registered ones it names) and state stored under the account
        # (earlier responses, conversations, stored prompts, code-execution containers).
        "tools",
        "mcp_servers",
        "previous_response_id",
        "conversation",
        "prompt",
        "container",
    }
)
"""Options a client may not set: the request a worker sends with its key is built from the
agent's spec alone."""

WORKER_SET_OPTIONS = frozenset({OUTPUT_SCHEMA_OPTION})
"""Options a worker sets on its own calls from the agent's spec (``AgentSpec.output_schema``)."""

OUTPUT_LIMIT_OPTIONS = frozenset({"max_tokens", "max_completion_tokens", "max_output_tokens"})
"""Options that would set a call's output limit behind ``ModelConfig.max_output_tokens``, the
limit the budget reserves for."""

DEFAULT_MAX_OUTPUT_TOKENS = 4096


# The model providers the workers implement: the client checks ``ModelConfig.provider`` against
# this set before dispatching anything; the workers' provider registry implements exactly these
# names (a test checks it).
KNOWN_PROVIDERS: frozenset[str] = frozenset({"scripted", "openai", "openai_responses", "anthropic"})


class ModelConfig(BaseModel):
    """Which model an agent talks to.

    Attributes:
        provider: a provider name known to the workers (``scripted`` is the offline one).
        model: the provider's model name.
        options: provider options (for ``scripted``: ``latency_ms``, ``jitter_ms``, ``seed``,
            ``fail_on``, ``script``, ``answer``). Where a model is served and with which key is
            the workers' decision: ``base_url`` and ``api_key_env`` are refused here.
        endpoint: one of the endpoints the workers' operator declares in
            ``ORCHESTRATOR_ENDPOINTS`` (a URL and the variable holding its key, kept on the
            workers); None for the provider's own service with the provider's default key.
        max_output_tokens: the most tokens one call may generate, thinking included; sent to
            the provider as its output limit, and reserved from the run's budget before each
            call (so a lower limit lets more calls run near the end of a budget).
    """

    model_config = ConfigDict(extra="forbid")

    provider: str = "scripted"
    model: str = "scripted-1"
    options: dict[str, Any] = Field(default_factory=dict)
    context_window: int = Field(default=128_000, ge=256)
    endpoint: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    max_output_tokens: int = Field(default=DEFAULT_MAX_OUTPUT_TOKENS, ge=1, le=1_000_000)

    @field_validator("options")
    @classmethod
    def _no_endpoint_in_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        named = sorted(WORKER_OWNED_OPTIONS & value.keys())
        if named:
            raise ValueError(
                f"{', '.join(named)} cannot come from a client: where a model is served and "
                "with which key is set on the workers (ORCHESTRATOR_ENDPOINTS); name an "
                "endpoint with ModelConfig.endpoint"
            )
        limits = sorted(OUTPUT_LIMIT_OPTIONS & value.keys())
        if limits:
            raise ValueError(
                f"{', '.join(limits)}: set the output limit with ModelConfig.max_output_tokens, "
                "which the budget reserves for before each call"
            )
        derived = sorted(WORKER_SET_OPTIONS & value.keys())
        if derived:
            raise ValueError(
                f"{', '.join(derived)} cannot be an option: set AgentSpec.output_schema, which "
                "the workers ask of the model and validate its answers against"
            )
        rewrites = sorted(REQUEST_OPTIONS & value.keys())
        if rewrites:
            raise ValueError(
                f"{', '.join(rewrites)} cannot be options: the request a worker sends with its "
                "key is built from the agent's spec (the model is ModelConfig.model, the tools "
                "are the agent's registered tools; no extra headers, query parameters or body "
                "fields, no state stored with the provider)"
            )
        return value

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in KNOWN_PROVIDERS:
            known = ", ".join(sorted(KNOWN_PROVIDERS))
            raise ValueError(f"unknown provider {value!r} (known providers: {known})")
        return value


class AgentSpec(BaseModel):
    """One agent: its name, instructions (the system prompt), model and limits.

    Attributes:
        name: the agent's name; map-reduce mappers are named ``{name}_{i}``.
        instructions: the system prompt.
        model: the model configuration.
        tools: names of the tools the agent may call (checked against what workers serve).
        tool_policy: how the tool calls of one model turn run (parallel by default).
        max_turns: the most model turns before the run stops with an error.
        config_id: names this configuration in branch loop ids (else provider and model do).
        thinking: a thinking level, passed to providers that have one; part of loop ids.
        agent_id: whose plan the learners keep and this agent uses (default: ``name``; the
            mappers of a run share their spec's name, not ``name_i``). It names Redis keys, so
            it has 1 to 200 characters and no ``:``, ``{``, ``}`` or control characters
            (``orchestrator.plans.agent_ids``).
        plan_mode: ``observe_only`` (learn only, the default), ``inject_hints`` (tell the
            model which tools may be called together) or ``schedule`` (the ``plan`` tool
            policy runs calls of one learned group concurrently, the rest one at a time).
        parallel_groups: tools you know may run together; they win over learned groups.
        cache_mode: the prompt-cache governor: ``observe`` (the default: its calls are
            recorded for the cache learner, requests unchanged), ``apply`` (the learned plan
            adds provider cache hints where they pay) or ``off``.
        timeout_s: the time limit of the whole agent run (900 s by default), counted from the
            first time it starts, including the time a redelivered execution resumes; past it
            the agent ends ``error`` with "timed out after N s" and frees its slot.
        output_schema: the JSON Schema its final answer must match (a dict, or a pydantic
            model class, turned into its JSON Schema here on the client): asked of the model
            in its provider's native structured-output mode and validated on the worker
            (``orchestrator/models/schemas.py``); the parsed value is ``AgentOutput.data``.
        output_retries: how many more model calls an answer that does not match
            ``output_schema`` gets, each told what was wrong (2 by default); each is a model
            call like any other (budget, pools, time limit, cancel). An answer that never
            matches ends the agent ``error``.
        agent: the name of an agent function the workers register with ``@agent``
            (``orchestrator.agents``): the member runs that function, with ``model`` as the
            model of its calls, instead of the built-in loop. None: the built-in loop.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    instructions: str = ""
    model: ModelConfig = Field(default_factory=ModelConfig)
    tools: list[str] = Field(default_factory=list)
    tool_policy: ToolPolicy = Field(default_factory=ToolPolicy)
    max_turns: int = Field(default=10, ge=1)
    config_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$")
    thinking: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$")
    agent_id: str = ""
    plan_mode: PlanMode = "observe_only"
    parallel_groups: list[list[str]] = Field(default_factory=list)
    cache_mode: CacheMode = "observe"
    timeout_s: float = Field(default=900.0, gt=0, allow_inf_nan=False)
    agent: str | None = Field(default=None, pattern=AGENT_NAME.pattern)
    if TYPE_CHECKING:  # a pydantic model class may be given: its JSON Schema is what is kept
        output_schema: dict[str, Any] | type[BaseModel] | None = None
    else:
        output_schema: dict[str, Any] | None = None
    output_retries: int = Field(default=2, ge=0, le=10)

    @property
    def output_json_schema(self) -> dict[str, Any] | None:
        """``output_schema`` as it is kept and sent: a JSON Schema (None without one)."""
        schema = self.output_schema
        return schema if isinstance(schema, dict) else None

    @field_validator("output_schema", mode="before")
    @classmethod
    def _schema_as_data(cls, value: object) -> dict[str, Any] | None:
        return output_schema_of(value)

    @model_validator(mode="after")
    def _agent_id_defaults_to_name(self) -> AgentSpec:
        if not self.agent_id:
            self.agent_id = self.name
        check_agent_id(self.agent_id)
        return self


class Budget(BaseModel):
    """Limits for one run, enforced atomically in Redis across all workers.

    ``max_agents`` is exact: an agent is counted when it is admitted. ``max_tokens`` and
    ``max_cost_usd`` are hard limits on what the run's model calls spend: before each call
    its worker reserves an upper bound of what the call can cost (its input, counted so that
    the count is never below the provider's, plus ``ModelConfig.max_output_tokens``), and the
    call is made only if every reservation and everything spent still fit; after the call the
    reservation becomes the usage the provider reported. A call that can never fit is not
    made: its agent ends ``skipped`` (no call made yet) or ``error``. ``max_cost_usd`` needs a
    known price for every model of the run (see ``orchestrator.prices``). Every limit is
    optional.
    """

    model_config = ConfigDict(extra="forbid")

    max_agents: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)
    max_cost_usd: float | None = Field(default=None, ge=0)
