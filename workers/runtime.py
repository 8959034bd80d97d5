"""The per-process objects a worker shares between its tasks."""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

from celery import Celery

from orchestrator import tracing
from orchestrator.config.settings import get_settings
from orchestrator.plans import ExecutionPlan
from orchestrator.plans.cache_plans import CachePlan
from orchestrator.plans.cache_store import CachePlanStore
from orchestrator.plans.store import PlanStore
from orchestrator.state.connection import store_client
from orchestrator.state.store import RunStore
from orchestrator.tools import Tool
from workers.agent.plan_cache import PlanCache
from workers.cache.governed import CacheContext, GovernedSurface
from workers.cache.refusals import ResendWithoutHints
from workers.coordination.watchdog import Watchdog
from workers.execution.leases import LeaseKeeper
from workers.execution.member import MemberRuntime
from workers.kinds.strategy_registry import registered_strategies
from workers.limits import SharedLimit
from workers.providers import ModelProvider, ModelSurface, get_provider
from workers.providers.budgeted import BudgetedProvider, CallBudget
from workers.providers.pooled import PooledProvider
from workers.providers.traced import TracedProvider
from workers.tools.calls import SlotRef
from workers.tools.mcp_tools import serve_mcp
from workers.tools.registry import ToolRegistry
from workers.tools.remote import CeleryRemoteCall
from workers.tools.runner import RemoteCall, ToolRunner


@cache
def store() -> RunStore:
    settings = get_settings()
    return RunStore(store_client(settings), settings)


@cache
def lease_keeper() -> LeaseKeeper:
    settings = get_settings()
    return LeaseKeeper(store(), settings.heartbeat_s, settings.lease_s)


@cache
def watchdog(app: Celery) -> Watchdog:
    settings = get_settings()
    served = {
        "strategies": registered_strategies().names,
        "endpoints": sorted(settings.endpoints),
    }
    return Watchdog(
        app,
        store(),
        settings.sweep_s,
        tool_registry(),
        served=served,
        group_limits=settings.group_limits,
    )


_REGISTRY_LOCK = threading.Lock()


def tool_registry() -> ToolRegistry:
    """The ``@tool`` tools of the worker's modules and the tools of its MCP servers (started
    here, in this process: once, whichever thread asks first)."""
    with _REGISTRY_LOCK:
        return _tool_registry()


@cache
def _tool_registry() -> ToolRegistry:
    settings = get_settings()
    return ToolRegistry.from_modules(settings.tool_module_names, serve_mcp(settings.mcp_servers))


def stop_tool_servers() -> None:
    """Stop the MCP servers of this process, if it started them."""
    if _tool_registry.cache_info().currsize:
        tool_registry().close()


def _tool_limit(tool: Tool) -> SharedLimit | None:
    if tool.info.max_concurrency is None:
        return None
    return SharedLimit(
        store().client,
        f"tool:{tool.name}",
        tool.info.max_concurrency,
        None,
        get_settings().lease_s,
    )


@cache
def tool_runner(app: Celery) -> ToolRunner:
    settings = get_settings()

    def start_remote(
        name: str, arguments: dict[str, Any], key: str, limit_s: float, slot: SlotRef | None
    ) -> RemoteCall:
        timeout, lease_s = settings.remote_start_timeout_s, settings.lease_s
        client = store().client
        return CeleryRemoteCall(app, client, name, arguments, key, limit_s, timeout, lease_s, slot)

    return ToolRunner(tool_registry(), _tool_limit, start_remote)


def provider(
    name: str, budget: CallBudget | None = None, cache: CacheContext | None = None
) -> ModelProvider:
    """The provider ``name``: its requests go through the cache governor for ``cache`` (when
    given), and each attempt of a call fits ``budget`` (when given) before it takes a slot of
    the shared pool the settings configure."""

    def attempt(surface: ModelSurface) -> ModelProvider:
        settings = get_settings()
        if cache is not None:
            surface = GovernedSurface(
                surface, cache, cache_plan_cache().get, settings.cache_governor
            )
        if tracing.enabled():  # off, a call costs no wrapper at all
            surface = TracedProvider(surface)
        # The pool is inside the budget, so that a slot is held only while a request is in
        # flight; a call waiting for budget holds none.
        pooled: ModelProvider = PooledProvider(
            surface, store().client, settings.provider_limits, settings.lease_s
        )
        if cache is not None:
            # Outside the pool: a request resent without the hints it was refused for takes a
            # slot of its own; inside the budget: one reservation covers both (a refusal is
            # unbilled).
            pooled = ResendWithoutHints(pooled)
        return BudgetedProvider(pooled, surface, budget) if budget is not None else pooled

    return get_provider(name, attempt)


@cache
def plan_cache() -> PlanCache[ExecutionPlan]:
    return PlanCache(PlanStore(store().client))


@cache
def cache_plan_cache() -> PlanCache[CachePlan]:
    return PlanCache(CachePlanStore(store().client))


@cache
def member_runtime(app: Celery) -> MemberRuntime:
    return MemberRuntime(app, store(), lease_keeper(), tool_runner(app), provider, plan_cache())
