"""The per-process objects a worker shares between its tasks, made from the settings the
worker read once at its start (``workers.app``) and passed down from here."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from celery import Celery

from orchestrator import tracing
from orchestrator.config.settings import Settings
from orchestrator.plans import ExecutionPlan
from orchestrator.plans.cache_plans import CachePlan
from orchestrator.plans.cache_store import CachePlanStore
from orchestrator.plans.store import PlanStore
from orchestrator.state.connection import store_client
from orchestrator.state.store import RunStore
from orchestrator.tools import Tool
from workers.agent.functions import AgentFunctions
from workers.agent.plan_cache import PlanCache
from workers.cache.governed import CacheContext, GovernedSurface
from workers.cache.refusals import ResendWithoutHints
from workers.coordination.watchdog import Watchdog
from workers.execution.leases import LeaseKeeper
from workers.execution.member import MemberRuntime
from workers.kinds.reducer_functions import registered_reducers
from workers.kinds.strategy_registry import registered_strategies
from workers.limits import SharedLimit
from workers.module_scan import served_modules
from workers.providers import ModelProvider, ModelSurface, get_provider
from workers.providers.budgeted import BudgetedProvider, CallBudget
from workers.providers.pooled import PooledProvider
from workers.providers.traced import TracedProvider
from workers.tools.calls import SlotRef
from workers.tools.registry import ToolRegistry
from workers.tools.remote import CeleryRemoteCall
from workers.tools.runner import RemoteCall, ToolRunner

T = TypeVar("T")


class WorkerRuntime:
    """One worker process's shared objects, each made the first time a task needs it and then
    kept (one store, one lease keeper, one watchdog... per process).

    Parameters:
        app: the worker's Celery app.
        settings: the settings the worker read at its start; everything here is made from
            them, nothing reads the environment again.
    """

    def __init__(self, app: Celery, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        # Reentrant: making one object makes the ones it uses (the member runtime, the store).
        self._lock = threading.RLock()
        self._made: dict[str, Any] = {}

    def _once(self, name: str, make: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._made:
                self._made[name] = make()
            found: T = self._made[name]
            return found

    @property
    def store(self) -> RunStore:
        """The run store on the state Redis."""
        return self._once("store", lambda: RunStore(store_client(self.settings), self.settings))

    @property
    def lease_keeper(self) -> LeaseKeeper:
        """What renews the leases of the members this process runs."""
        settings = self.settings
        return self._once(
            "lease_keeper", lambda: LeaseKeeper(self.store, settings.heartbeat_s, settings.lease_s)
        )

    @property
    def watchdog(self) -> Watchdog:
        """The sweeps of this worker (and its presence, with what it serves)."""
        return self._once("watchdog", self._watchdog)

    def _watchdog(self) -> Watchdog:
        settings = self.settings
        served = {
            "strategies": registered_strategies(settings).names,
            "reducers": registered_reducers(settings).names,
            "endpoints": sorted(settings.endpoints),
            "agents": self.agent_functions.names,
        }
        return Watchdog(
            self.app,
            self.store,
            settings.sweep_s,
            self.tool_registry,
            served=served,
            group_limits=settings.group_limits,
        )

    @property
    def agent_functions(self) -> AgentFunctions:
        """The ``@agent`` functions of ``ORCHESTRATOR_MODULES``, and the variables holding
        the worker's keys (redacted from their errors)."""
        settings = self.settings
        keys = [e.api_key_env for e in settings.endpoints.values() if e.api_key_env]
        return self._once(
            "agent_functions", lambda: AgentFunctions.from_modules(settings.module_names, keys)
        )

    @property
    def tool_registry(self) -> ToolRegistry:
        """The tools of ``ORCHESTRATOR_MODULES`` and ``ORCHESTRATOR_TOOL_MODULES``, and of
        ``ORCHESTRATOR_MCP_SERVERS`` (the servers started here, in this process)."""
        settings = self.settings
        modules = served_modules(settings, settings.tool_module_names)

        def made() -> ToolRegistry:
            if not settings.mcp_servers:
                return ToolRegistry.from_modules(modules)
            # The MCP SDK's generated types take about a second of CPU to import: a worker
            # without MCP servers (most of them) never pays it.
            from workers.tools.mcp_tools import serve_mcp

            return ToolRegistry.from_modules(modules, serve_mcp(settings.mcp_servers))

        return self._once("tool_registry", made)

    def stop_tool_servers(self) -> None:
        """Stop the MCP servers of this process, if it started them."""
        with self._lock:
            registry = self._made.get("tool_registry")
        if registry is not None:
            registry.close()

    def _tool_limit(self, tool: Tool) -> SharedLimit | None:
        if tool.info.max_concurrency is None:
            return None
        return SharedLimit(
            self.store.client,
            f"tool:{tool.name}",
            tool.info.max_concurrency,
            None,
            self.settings.lease_s,
        )

    @property
    def tool_runner(self) -> ToolRunner:
        """What runs an agent's tool calls, here or on a tools worker."""
        return self._once("tool_runner", self._tool_runner)

    def _tool_runner(self) -> ToolRunner:
        settings, app = self.settings, self.app

        def start_remote(
            name: str, arguments: dict[str, Any], key: str, limit_s: float, slot: SlotRef | None
        ) -> RemoteCall:
            timeout, lease_s = settings.remote_start_timeout_s, settings.lease_s
            client = self.store.client
            return CeleryRemoteCall(
                app, client, name, arguments, key, limit_s, timeout, lease_s, slot
            )

        return ToolRunner(self.tool_registry, self._tool_limit, start_remote)

    def provider(
        self, name: str, budget: CallBudget | None = None, cache: CacheContext | None = None
    ) -> ModelProvider:
        """The provider ``name``: its requests go through the cache governor for ``cache``
        (when given), and each attempt of a call fits ``budget`` (when given) before it takes
        a slot of the shared pool the settings configure."""
        settings = self.settings

        def attempt(surface: ModelSurface) -> ModelProvider:
            if cache is not None:
                surface = GovernedSurface(
                    surface, cache, self.cache_plan_cache.get, settings.cache_governor
                )
            if tracing.enabled():  # off, a call costs no wrapper at all
                surface = TracedProvider(surface)
            # The pool is inside the budget, so that a slot is held only while a request is in
            # flight; a call waiting for budget holds none.
            pooled: ModelProvider = PooledProvider(
                surface, self.store.client, settings.provider_limits, settings.lease_s
            )
            if cache is not None:
                # Outside the pool: a request resent without the hints it was refused for takes
                # a slot of its own; inside the budget: one reservation covers both (a refusal
                # is unbilled).
                pooled = ResendWithoutHints(pooled)
            if budget is None:
                return pooled
            return BudgetedProvider(pooled, surface, budget, settings.prices)

        return get_provider(name, settings, attempt)

    @property
    def plan_cache(self) -> PlanCache[ExecutionPlan]:
        """The learned plans, as this process last read them."""
        return self._once("plan_cache", lambda: PlanCache(PlanStore(self.store.client)))

    @property
    def cache_plan_cache(self) -> PlanCache[CachePlan]:
        """The cache learner's plans, as this process last read them."""
        return self._once("cache_plan_cache", lambda: PlanCache(CachePlanStore(self.store.client)))

    @property
    def member(self) -> MemberRuntime:
        """What a member execution uses of this worker."""
        return self._once(
            "member",
            lambda: MemberRuntime(
                self.app,
                self.store,
                self.lease_keeper,
                self.tool_runner,
                self.provider,
                self.plan_cache,
                self.agent_functions,
            ),
        )
