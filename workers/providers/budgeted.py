"""A wrapper that makes every model call fit its run's budget before it is made.

It sits inside the retries and outside the provider pool (Retrying(Budgeted(Pooled(surface)))):
each HTTP attempt is reserved and settled on its own, and a call waiting for budget holds no
pool slot. See ``orchestrator/state/budget.py`` for the rules.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestrator.config.settings import Price
from orchestrator.models import Message, ModelConfig
from orchestrator.prices import cost_bound
from orchestrator.state.budget import RunBudget, to_nusd
from orchestrator.state.connection import wait_out_refusals
from orchestrator.tools import ToolInfo
from workers.execution.cancellation import Cancelled, CancelToken
from workers.providers.base import ModelProvider, ModelResponse, ModelSurface, ProviderError

# How long a call that fits only once calls in flight settle waits between looks.
FIRST_WAIT_S = 0.05
LONGEST_WAIT_S = 1.0
LEASE_LOST = "lease lost: another execution holds this member"

log = logging.getLogger(__name__)


class BudgetExceeded(Exception):
    """A model call that does not fit the run's budget was not made."""


@dataclass
class CallBudget:
    """One member execution's use of its run's budget.

    Parameters:
        budget: the run's ledger.
        member: the member.
        token: the execution's lease token (its calls are reserved in its name, so that those
            of an execution that dies are charged when its lease is taken over).
        cost_limited: the run has ``max_cost_usd``: every call needs a known price.
    """

    budget: RunBudget
    member: str
    token: str
    cost_limited: bool
    attempt: str = field(default_factory=lambda: secrets.token_hex(6))
    """This execution attempt's part of its call ids: a retried delivery claims with the same
    token, and its calls must never take the ids (and so the reservations) of the attempt
    before it."""
    _numbers: itertools.count[int] = field(default_factory=itertools.count)
    _made: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_call_id(self) -> str:
        """A new call id, ``TOKEN/ATTEMPT/N``: unique across executions, attempts and calls."""
        with self._lock:
            number = next(self._numbers)
            self._made = number + 1
        return f"{self.token}/{self.attempt}/{number}"

    @property
    def made(self) -> tuple[str, int]:
        """The attempt's call-id prefix and how many ids it handed out, for the member's
        completion to charge any call whose settle was lost (``RunStore.complete``)."""
        return f"{self.token}/{self.attempt}", self._made


class BudgetedProvider:
    """Calls ``inner`` once the call's upper bound is reserved in ``budget``; settles to the
    usage reported, or to nothing when the provider answered with an error, or keeps the
    reservation as spent when the call ended without an answer (it may have been billed).

    Parameters:
        inner: what makes the call (a pooled surface).
        surface: the provider that counts the call's input.
        budget: the execution's budget.
        prices: the worker's price overrides (its settings' ``prices``), over genai-prices'.
    """

    def __init__(
        self,
        inner: ModelProvider,
        surface: ModelSurface,
        budget: CallBudget,
        prices: Mapping[str, Price],
    ) -> None:
        self._inner = inner
        self._surface = surface
        self._budget = budget
        self._prices = prices

    def complete(
        self,
        config: ModelConfig,
        messages: list[Message],
        cancel: CancelToken,
        tools: list[ToolInfo],
    ) -> ModelResponse:
        cancel.check()
        input_bound = self._surface.input_token_bound(config, messages, tools)
        tokens = input_bound + config.max_output_tokens
        nusd = 0
        if self._budget.cost_limited:
            limit = config.max_output_tokens
            bound = cost_bound(config, input_bound, limit, overrides=self._prices)
            if bound is None:
                raise BudgetExceeded(
                    f"budget: max_cost_usd is set and this worker knows no price for "
                    f"{config.provider}:{config.model}"
                )
            nusd = to_nusd(bound)
        call_id = self._budget.next_call_id()
        self._reserve(call_id, tokens, nusd, cancel)
        try:
            response = self._inner.complete(config, messages, cancel, tools)
        except ProviderError as failure:
            spent = (0, 0) if failure.unbilled else (tokens, nusd)
            self._settle(call_id, *spent)
            raise
        except BaseException:
            self._settle(call_id, tokens, nusd)
            raise
        usage = response.usage
        if response.usage_reported:
            self._settle(call_id, usage.total_tokens, to_nusd(usage.cost_usd))
        else:
            # Billed, by how much unknown: the bound it was reserved at, never less.
            self._settle(call_id, tokens, nusd)
        return response

    def _settle(self, call_id: str, tokens: int, nusd: int) -> None:
        """Settle the call, waiting while Redis refuses writes (it is full): the call was
        made, its answer is kept (never turned into an error for want of room), its lease held
        meanwhile, and its model never called again for it."""
        ledger = self._budget.budget
        wait_out_refusals(lambda: ledger.settle(call_id, tokens, nusd), self._waiting)

    def _waiting(self, refusal: str) -> None:
        log.warning(
            "member %s: Redis refuses writes (%s); its budget waits until Redis has room",
            self._budget.member,
            refusal,
        )

    def _reserve(self, call_id: str, tokens: int, nusd: int, cancel: CancelToken) -> None:
        wait_s = FIRST_WAIT_S
        own = self._budget
        while True:
            # Before the call: waiting for a full Redis to have room is safe (and cancellable).
            verdict, reason = wait_out_refusals(
                lambda: own.budget.reserve(own.member, own.token, call_id, tokens, nusd),
                self._waiting,
                cancel.sleep,
            )
            if verdict == "ok":
                return
            if verdict == "deny":
                raise BudgetExceeded(reason)
            if verdict == "lost":
                cancel.cancel(LEASE_LOST, "error")
                raise Cancelled(LEASE_LOST)
            # It fits once calls in flight settle: they are bounded, so this ends.
            cancel.sleep(wait_s)
            wait_s = min(wait_s * 2, LONGEST_WAIT_S)
