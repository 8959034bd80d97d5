"""A run's budget: the ledger in Redis and its rules (``lua/budget.lua``).

The guarantee: what a run's model calls spend never passes ``max_tokens`` or ``max_cost_usd``.
Before each call its worker reserves an upper bound of what the call can use; the call is made
only if everything spent plus every reservation of the calls in flight still fits; after it,
the reservation becomes the usage the provider reported. A call that can never fit is not
made. Admission uses the same ledger: a member is denied once even the least call an agent can
make (its output limit) no longer fits, and waits while it fits only once calls in flight
settle.

Amounts are whole numbers: tokens, and cost in nano-USD, rounded up, so that sums in Redis never
drift and a rounded figure is never below the real one.

The invariant: every reservation ends exactly once, settled (with the usage reported) or
charged (at its reservation), whatever process dies or Redis loses. Call ids are unique per
execution attempt; a claim that displaces an execution, the sweep of an expired lease, a
member's completion and the run's end charge what is left in flight; an ended call leaves a mark
so that a second ending changes nothing (``lua/budget.lua``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import redis

from orchestrator.config.settings import Price
from orchestrator.models import AgentSpec, Budget, ModelConfig
from orchestrator.models.requests import RunRequest
from orchestrator.prices import cost_bound
from orchestrator.state.keys import RunKeys, run_keys
from orchestrator.state.scripts import run_script

NANO_USD = 1_000_000_000

Verdict = Literal["ok", "wait", "deny", "lost"]


def to_nusd(usd: float) -> int:
    """USD as whole nano-USD, rounded up (a bound or a charge is never below the real cost)."""
    return math.ceil(usd * NANO_USD - 1e-6) if usd > 0 else 0


def least_call_nusd(model: ModelConfig, prices: Mapping[str, Price]) -> int:
    """The least a call of ``model`` can reserve: its output limit with no input, at
    ``prices`` (the settings' overrides) else genai-prices' (0 when it has no known price:
    such a run has no cost limit, which is refused at submit)."""
    bound = cost_bound(model, 0, model.max_output_tokens, overrides=prices)
    return to_nusd(bound) if bound is not None else 0


def _floors(
    specs: list[AgentSpec], prefix: str, budget: Budget, prices: Mapping[str, Price]
) -> dict[str, int]:
    if not specs:
        return {}
    floors = {f"{prefix}_tokens": min(spec.model.max_output_tokens for spec in specs)}
    if budget.max_cost_usd is not None:
        floors[f"{prefix}_nusd"] = min(least_call_nusd(spec.model, prices) for spec in specs)
    return floors


def ledger_fields(request: RunRequest, prices: Mapping[str, Price]) -> dict[str, int]:
    """A new run's ledger: its limits, zero spent, and the floors admission uses (the least
    call a member, or the final agent, can make, at ``prices``: the settings' overrides)."""
    budget = request.budget
    fields = {"agents": 0, "spent_tokens": 0, "spent_nusd": 0}
    fields |= {"reserved_tokens": 0, "reserved_nusd": 0, "calls": 0}
    if budget.max_agents is not None:
        fields["max_agents"] = budget.max_agents
    if budget.max_tokens is not None:
        fields["max_tokens"] = budget.max_tokens
    if budget.max_cost_usd is not None:
        # Rounded down: the limit in whole nano-USD is never above the one asked for.
        fields["max_nusd"] = math.floor(budget.max_cost_usd * NANO_USD + 1e-6)
    fields |= _floors(request.member_specs, "floor", budget, prices)
    final = request.final_spec
    fields |= _floors([final] if final is not None else [], "final_floor", budget, prices)
    return fields


@dataclass(frozen=True)
class Ledger:
    """What a run has spent and has reserved for the calls in flight, and its limits."""

    spent_tokens: int
    spent_usd: float
    reserved_tokens: int
    reserved_usd: float
    agents: int
    calls: int
    max_tokens: int | None
    max_cost_usd: float | None
    max_agents: int | None


class RunBudget:
    """The ledger of one run, as its members' model calls use it.

    Parameters:
        client: the state Redis.
        run_id: the run.
    """

    def __init__(self, client: redis.Redis, run_id: str) -> None:
        self._client = client
        self.run_id = run_id

    def _run(self, script: str, *args: object) -> object:
        return run_script(self._client, script, run_keys(self.run_id).all, list(args))

    def reserve(
        self, member: str, token: str, call_id: str, tokens: int, nusd: int
    ) -> tuple[Verdict, str]:
        """Reserve a call's upper bound for the execution ``token`` of ``member``: ``ok``,
        ``wait`` (it fits once calls in flight settle), ``deny`` with the reason (it can never
        fit) or ``lost`` (the execution no longer holds the member, or the run is gone)."""
        reply = self._run("reserve_call", member, token, call_id, tokens, nusd)
        assert isinstance(reply, list)
        verdict = _text(reply[0])
        reason = _text(reply[1]) if len(reply) > 1 else ""
        return verdict, reason  # type: ignore[return-value]

    def settle(self, call_id: str, tokens: int, nusd: int) -> bool:
        """Replace the call's reservation with its usage; False when there was none (settled
        already, or charged as an orphan when its execution lost its lease)."""
        return bool(self._run("settle_call", call_id, tokens, nusd))

    def ledger(self) -> Ledger:
        """The ledger now."""
        raw = self._client.hgetall(RunKeys(self.run_id).budget)
        # A child run's ledger also names its ancestors' (``parents``), which is no number.
        values = {_text(k): int(v) for k, v in raw.items() if k != b"parents"}

        def usd(nusd: int | None) -> float | None:
            return None if nusd is None else nusd / NANO_USD

        return Ledger(
            spent_tokens=values.get("spent_tokens", 0),
            spent_usd=values.get("spent_nusd", 0) / NANO_USD,
            reserved_tokens=values.get("reserved_tokens", 0),
            reserved_usd=values.get("reserved_nusd", 0) / NANO_USD,
            agents=values.get("agents", 0),
            calls=values.get("calls", 0),
            max_tokens=values.get("max_tokens"),
            max_cost_usd=usd(values.get("max_nusd")),
            max_agents=values.get("max_agents"),
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
