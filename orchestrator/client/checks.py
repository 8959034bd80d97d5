"""What the client checks against the live workers before it submits a run: the tools,
endpoints, concurrency groups and strategies a run names must be ones the workers declare, and
a cost limit needs a price for each of its models. Each refusal is an ``InvalidRunError`` that
lists what is on offer."""

from __future__ import annotations

import redis

from orchestrator.config.settings import Settings
from orchestrator.errors import InvalidRunError
from orchestrator.models import AgentSpec, Budget
from orchestrator.models.requests import BranchesRequest, MapReduceRequest, RunRequest
from orchestrator.prices import price_known
from orchestrator.state import groups as group_limits
from orchestrator.state.presence import live_names, live_tools
from orchestrator.strategies import BUILTIN_STRATEGIES


def request_specs(request: RunRequest) -> list[AgentSpec | None]:
    """Every agent spec a request names (None for an absent judge)."""
    if isinstance(request, MapReduceRequest):
        return [request.mapper, request.reducer]
    if isinstance(request, BranchesRequest):
        return [*request.configs, request.judge]
    return [request.spec]


def check_tools(client: redis.Redis, specs: list[AgentSpec | None]) -> None:
    """Refuse a tool no live worker serves."""
    wanted = {name for spec in specs if spec is not None for name in spec.tools}
    if not wanted:
        return
    served = {info.name for info in live_tools(client)}
    unknown = sorted(wanted - served)
    if unknown:
        offer = ", ".join(sorted(served)) or "none: no worker serves tools"
        raise InvalidRunError(f"unknown tool {', '.join(map(repr, unknown))} (served: {offer})")


def check_prices(settings: Settings, budget: Budget, specs: list[AgentSpec | None]) -> None:
    """Refuse a cost limit over a model without a known price."""
    # A model without a price costs 0, so a cost limit would never bind on it: refuse the
    # run rather than let it spend without a limit.
    if budget.max_cost_usd is None:
        return
    unpriced = dict.fromkeys(
        f"{spec.model.provider}:{spec.model.model}"
        for spec in specs
        if spec is not None and not price_known(spec.model, overrides=settings.prices)
    )
    if unpriced:
        raise InvalidRunError(
            f"budget.max_cost_usd needs a price for {', '.join(unpriced)}; none is known "
            "(add it to ORCHESTRATOR_PRICES)"
        )


def check_endpoints(client: redis.Redis, specs: list[AgentSpec | None]) -> None:
    """Refuse an endpoint no live worker declares."""
    wanted = {spec.model.endpoint for spec in specs if spec is not None and spec.model.endpoint}
    if not wanted:
        return
    served = set(live_names(client, "endpoints"))
    unknown = sorted(wanted - served)
    if unknown:
        offer = ", ".join(sorted(served)) or "none"
        raise InvalidRunError(
            f"model.endpoint: unknown endpoint {', '.join(map(repr, unknown))} "
            f"(declared on the workers: {offer})"
        )


def check_group(client: redis.Redis, name: str | None) -> None:
    """Refuse a concurrency group no live worker declares."""
    if name is None or group_limits.limit(client, name) is not None:
        return
    offer = ", ".join(sorted(group_limits.live_limits(client))) or "none"
    raise InvalidRunError(
        f"group: unknown concurrency group {name!r} (declared on the workers: {offer})"
    )


def reducer_function(client: redis.Redis, reducer: object) -> str | None:
    """The reducer function a map-reduce names (``reducer`` given as a name), None for an
    agent; a name no live worker registers is refused."""
    if not isinstance(reducer, str):
        return None
    check_reducer(client, reducer)
    return reducer


def check_reducer(client: redis.Redis, name: str) -> None:
    """Refuse a reducer function no live worker registers."""
    registered = live_names(client, "reducers")
    if name not in registered:
        offer = ", ".join(registered) or "none"
        raise InvalidRunError(
            f"reducer: unknown reducer function {name!r} (registered on the workers: {offer})"
        )


def check_strategy(client: redis.Redis, name: str) -> None:
    """Refuse a strategy that is neither built in nor registered on a live worker."""
    if name in BUILTIN_STRATEGIES:
        return
    registered = live_names(client, "strategies")
    if name not in registered:
        offer = ", ".join(registered) or "none"
        raise InvalidRunError(
            f"strategy: unknown strategy {name!r} (registered on the workers: {offer}; "
            f"built-in: {', '.join(BUILTIN_STRATEGIES)})"
        )


def check_agents(client: redis.Redis, specs: list[AgentSpec | None]) -> None:
    """Refuse an agent function no live worker registers (``AgentSpec.agent``)."""
    wanted = {spec.agent for spec in specs if spec is not None and spec.agent}
    if not wanted:
        return
    registered = live_names(client, "agents")
    unknown = sorted(wanted - set(registered))
    if unknown:
        offer = ", ".join(registered) or "none"
        raise InvalidRunError(
            f"agent: unknown agent function {', '.join(map(repr, unknown))} "
            f"(registered on the workers: {offer})"
        )
