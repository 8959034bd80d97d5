"""Settings read from the environment (``ORCHESTRATOR_*``) with pydantic-settings. The types of
their values are in ``values``, the handling of their URLs in ``urls``; both are importable
from here too."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from orchestrator.config.governor import CacheGovernorConfig
from orchestrator.config.mcp import McpServer, parse_mcp_servers
from orchestrator.config.urls import (
    AMQP_SCHEMES,
    REDIS_SCHEMES,
    URL_FIELDS,
    is_sentinel,
    masked_url,
    url_passwords,
)
from orchestrator.config.values import Endpoint, PoolLimit, Price, parse_group_limits
from orchestrator.errors import OrchestratorError

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_RESULT_TTL_S = 7 * 24 * 3600
ENV_PREFIX = "ORCHESTRATOR_"

__all__ = [
    "AMQP_SCHEMES",
    "DEFAULT_REDIS_URL",
    "DEFAULT_RESULT_TTL_S",
    "ENV_PREFIX",
    "REDIS_SCHEMES",
    "URL_FIELDS",
    "Endpoint",
    "InvalidSettingsError",
    "PoolLimit",
    "Price",
    "Settings",
    "describe_invalid",
    "get_settings",
    "load_settings",
    "masked_url",
    "parse_group_limits",
    "url_passwords",
    "with_redis_url",
]


class Settings(BaseSettings):
    """Where Redis and the broker are, and the timings of leases and the watchdog.

    Parameters:
        redis_url: run state, budgets and events; also the broker and result backend unless
            ``broker_url`` / ``result_backend`` are set (``ORCHESTRATOR_REDIS_URL``).
        broker_url: a separate broker, e.g. ``amqp://guest:guest@localhost:5672//``.
        result_backend: a separate Redis result backend.
        lease_s: how long a running member may go without a heartbeat before the watchdog
            publishes it again.
        heartbeat_s: how often a worker renews the leases of the members it runs (cancels are
            announced at once, not at renewal).
        sweep_s: how often each active run is swept (by one worker): members whose lease
            expired are published again, and a run past its deadline is cancelled.
        visibility_timeout_s: the broker's redelivery timeout; keep it above your longest task.
        events_maxlen: the approximate length bound of each run's event stream.
        ended_events_keep_s: how long a run of 1,000 members or more keeps its whole event
            stream once it ended (for readers to catch up); then it keeps one event for every
            4 members, its end last (set on the workers, which end runs).
        result_ttl_s: how long what a run keeps (its state, outputs, events and result) stays
            in Redis once it ended (``ORCHESTRATOR_RESULT_TTL_S``, 7 days by default); set on the
            workers, which end runs.
        modules: comma-separated modules whose registrations this worker serves: its
            ``@tool``, ``@strategy``, ``@reducer`` and ``@agent``
            functions (``ORCHESTRATOR_MODULES``).
        tool_modules: comma-separated modules whose ``@tool`` functions this worker serves
            (besides those of ``modules``).
        strategy_modules: comma-separated modules whose ``@strategy`` functions this worker
            serves (the only strategies besides the built-ins that a run may name).
        remote_start_timeout_s: how long an agent waits for a remote tool call to be picked up
            before it fails the call (no free worker serves the ``tools`` queue).
        endpoints: named endpoints this worker serves (``ORCHESTRATOR_ENDPOINTS``), e.g.
            ``{"local-vllm": {"provider": "openai", "base_url": "http://vllm:8000/v1",
            "api_key_env": "VLLM_KEY"}}``; a run names one with ``ModelConfig.endpoint``, and a
            worker sends a key only to a URL named here (or the provider's own).
        provider_limits: pools shared by all workers, keyed ``provider`` or
            ``provider:model``, e.g. ``{"openai:gpt-4o": {"max_concurrent": 8, "rpm": 500, "tpm":
            30000}}``.
        prices: USD per million tokens by ``provider:model`` (``ORCHESTRATOR_PRICES``), e.g.
            ``{"openai:my-finetune": {"input": 3, "output": 12, "cached_input": 1.5}}``; they
            win over the ``genai-prices`` package's list (``orchestrator/prices.py``). A run
            with ``max_cost_usd`` is refused at submit if one of its models has neither.
        provider_retries: how many times a rate-limited or failing model call is retried.
        cache_governor: the cache governor's numbers (``ORCHESTRATOR_CACHE_GOVERNOR``, JSON;
            see ``orchestrator/config/governor.py``).
        members_per_message: members admitted together travel up to this many to a task
            message, each run on a thread of its own, once their run is known to be short (one
            of its members ended within ``lane_s``); 1: a message each
            (``workers/execution/lanes.py``; see the Worker layout and scale page).
        first_window_batches: members admitted before their run is known to be short (its
            first window) may share messages too; off by default, so that Flower shows every
            member of a run whose members are slow (``ORCHESTRATOR_FIRST_WINDOW_BATCHES=1``).
        lane_s: a member that took less than this goes on, in its thread, with a member its
            completion let in instead of publishing it; 0: never.
        redis_cluster: ``redis_url`` names a node of a Redis Cluster, which then holds the run
            state (``ORCHESTRATOR_REDIS_CLUSTER=1``; see the Redis Cluster page); the broker and
            the result backend cannot be one, so ``broker_url`` and ``result_backend`` must be set.
        group_limits: concurrency groups this worker declares (``ORCHESTRATOR_GROUP_LIMITS``),
            e.g. ``{"team-a": 50}``: the members of all runs that name the group stay within
            its limit across all workers (see ``lua/group.lua``).
        sentinel_master: the master the sentinels of a ``sentinel://`` URL monitor
            (``ORCHESTRATOR_SENTINEL_MASTER``); required with such a URL (see the Sentinel page).
        sentinel_password: the sentinels' own password, when they require one
            (``ORCHESTRATOR_SENTINEL_PASSWORD``); the servers' password goes in the URL.
        mcp_servers: the MCP servers whose tools this worker serves as ``{server}.{tool}``
            (``ORCHESTRATOR_MCP_SERVERS``, JSON; see ``orchestrator/config/mcp.py``).
    """

    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", extra="ignore")

    redis_url: str = DEFAULT_REDIS_URL
    broker_url: str | None = None
    result_backend: str | None = None
    lease_s: float = Field(default=30.0, gt=0)
    heartbeat_s: float = Field(default=2.0, gt=0)
    sweep_s: float = Field(default=5.0, gt=0)
    visibility_timeout_s: int = Field(default=7200, gt=0)
    events_maxlen: int = Field(default=10_000, gt=0)
    ended_events_keep_s: float = Field(default=60.0, ge=0)
    result_ttl_s: int = Field(default=DEFAULT_RESULT_TTL_S, gt=0)
    modules: str = ""
    tool_modules: str = ""
    strategy_modules: str = ""
    remote_start_timeout_s: float = Field(default=30.0, gt=0)
    provider_limits: dict[str, PoolLimit] = Field(default_factory=dict)
    endpoints: dict[str, Endpoint] = Field(default_factory=dict)
    prices: dict[str, Price] = Field(default_factory=dict)
    provider_retries: int = Field(default=4, ge=0)
    cache_governor: CacheGovernorConfig = Field(default_factory=CacheGovernorConfig)
    members_per_message: int = Field(default=16, ge=1)
    first_window_batches: bool = False
    lane_s: float = Field(default=1.0, ge=0)
    # Parsed by the validator, so that a mistake is named in one line (pydantic-settings' own
    # JSON decoding would only say that the value could not be parsed).
    group_limits: Annotated[dict[str, int], NoDecode] = Field(default_factory=dict)
    redis_cluster: bool = False
    sentinel_master: str | None = None
    sentinel_password: SecretStr | None = None
    mcp_servers: Annotated[dict[str, McpServer], NoDecode] = Field(default_factory=dict)

    @field_validator("redis_url", "broker_url", "result_backend")
    @classmethod
    def _redis_scheme(cls, url: str | None, info: ValidationInfo) -> str | None:
        """A Redis URL; the error names the scheme only, never the rest (it may hold a password)."""
        if url is None:
            return None
        allowed = REDIS_SCHEMES + (AMQP_SCHEMES if info.field_name == "broker_url" else ())
        scheme = urlsplit(url).scheme.lower()
        if scheme not in allowed:
            found = f"scheme {scheme!r}" if scheme else "no scheme"
            raise ValueError(f"the URL has {found}; expected one of {', '.join(allowed)}")
        return url

    @model_validator(mode="after")
    def _cluster_apart(self) -> Settings:
        """A Cluster run store needs a broker and a result backend of their own (kombu and
        Celery have no Cluster transport), and a plain node URL to find the Cluster by."""
        if not self.redis_cluster:
            return self
        missing = [
            f"{ENV_PREFIX}{name.upper()}"
            for name in ("broker_url", "result_backend")
            if getattr(self, name) is None
        ]
        if missing:
            raise ValueError(
                f"{ENV_PREFIX}REDIS_CLUSTER is on, so {' and '.join(missing)} must be set: the "
                "broker and the result backend cannot be a Redis Cluster"
            )
        scheme = urlsplit(self.redis_url).scheme.lower()
        if scheme not in ("redis", "rediss"):
            raise ValueError(
                f"{ENV_PREFIX}REDIS_CLUSTER is on, so {ENV_PREFIX}REDIS_URL must be a redis:// "
                f"or rediss:// URL of a node of the Cluster, not scheme {scheme!r}"
            )
        return self

    @model_validator(mode="after")
    def _sentinel_needs_master(self) -> Settings:
        urls = (self.redis_url, self.broker_url, self.result_backend)
        if not self.sentinel_master and any(url and is_sentinel(url) for url in urls):
            raise ValueError(
                "a sentinel:// URL needs ORCHESTRATOR_SENTINEL_MASTER, the name of the master "
                "the sentinels monitor"
            )
        return self

    @field_validator("group_limits", mode="before")
    @classmethod
    def _group_limits(cls, value: object) -> dict[str, int]:
        return parse_group_limits(value)

    @field_validator("mcp_servers", mode="before")
    @classmethod
    def _mcp_servers(cls, value: object) -> dict[str, McpServer]:
        return parse_mcp_servers(value)

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        """What ``repr()`` and ``str()`` show: the URLs with their passwords masked."""
        for name, value in super().__repr_args__():
            masked = name in URL_FIELDS and isinstance(value, str)
            yield name, masked_url(value) if masked else value

    @property
    def module_names(self) -> list[str]:
        return [name.strip() for name in self.modules.split(",") if name.strip()]

    @property
    def tool_module_names(self) -> list[str]:
        return [name.strip() for name in self.tool_modules.split(",") if name.strip()]

    @property
    def strategy_module_names(self) -> list[str]:
        return [name.strip() for name in self.strategy_modules.split(",") if name.strip()]

    @property
    def broker(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def backend(self) -> str:
        return self.result_backend or self.redis_url


class InvalidSettingsError(OrchestratorError, ValueError):
    """The settings are invalid; the message names each variable and what is wrong with it,
    never its value (a URL may hold a password)."""


def describe_invalid(error: ValidationError) -> str:
    """The errors by environment variable, without the values."""
    causes = []
    for item in error.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in item["loc"])
        ctx = item.get("ctx") or {}
        message = str(ctx["error"]) if item["type"] == "value_error" else item["msg"]
        # A check across settings (a model validator) has no field: its message names them.
        causes.append(f"{ENV_PREFIX}{field.upper()}: {message}" if field else message)
    return "; ".join(causes)


def get_settings() -> Settings:
    """The settings as the environment (and a ``.env`` file) says now, read afresh on every
    call: no process-wide copy is kept. A process reads them once where it starts (the CLI's
    ``main``, a worker's start in ``workers.app``, a ``Client()`` given none) and passes the
    ``Settings`` down; library code takes them as an argument."""
    return Settings()


def load_settings() -> Settings:
    """``get_settings()``, or ``InvalidSettingsError`` naming what is wrong without the values:
    what the client, the CLI and a starting worker call."""
    try:
        return get_settings()
    except ValidationError as error:
        raise InvalidSettingsError(describe_invalid(error)) from None
    except SettingsError as error:  # a value pydantic-settings could not decode (JSON)
        raise InvalidSettingsError(f"settings: {error}") from None


def with_redis_url(settings: Settings, redis_url: str) -> Settings:
    """``settings`` with another Redis URL, validated as the environment's would be."""
    try:
        return Settings.model_validate({**settings.model_dump(), "redis_url": redis_url})
    except ValidationError as error:
        raise InvalidSettingsError(describe_invalid(error)) from None
