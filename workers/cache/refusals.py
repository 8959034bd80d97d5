"""Requests refused for their cache hints: sent again with fewer, each send its own attempt.

A provider that refuses a request as invalid once the governor added hints gets it again with
fewer of them: without ``prompt_cache_retention`` first (the field models and OpenAI-compatible
servers take least often), then without any hint. Each send is an attempt of its own under the
provider pool (``ResendWithoutHints`` sits outside ``PooledProvider`` and inside the budget:
``Budgeted(ResendWithoutHints(Pooled(Governed(surface))))``), so a resend takes a slot and
counts against the per-minute limit, while the one budget reservation covers it (a refused
request is unbilled).

A refusal is remembered, for this process, only when the provider's error names the field, and
only for that field on that (surface, endpoint, model): a model that refuses one field costs
no other model, agent or field its hints.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar

from orchestrator.models import Message, ModelConfig
from orchestrator.models.cache_records import CacheDecision
from orchestrator.tools import ToolInfo
from workers.execution.cancellation import CancelToken
from workers.providers.base import ModelProvider, ModelResponse, ProviderError

KEY = "prompt_cache_key"
RETENTION = "prompt_cache_retention"
CACHE_CONTROL = "cache_control"
ALL_HINTS = frozenset({KEY, RETENTION, CACHE_CONTROL})

_refused: dict[tuple[str, str | None, str], frozenset[str]] = {}
_refused_lock = threading.Lock()

_dropping: ContextVar[frozenset[str]] = ContextVar("cache_hints_dropping", default=frozenset())
"""The hint fields this attempt of the call leaves out (set by ``ResendWithoutHints``)."""


def refused_fields(surface: str, config: ModelConfig) -> frozenset[str]:
    """The hint fields not to add to this call: those its (surface, endpoint, model) refused
    by name, and those the call's earlier attempts were refused with."""
    with _refused_lock:
        known = _refused.get((surface, config.endpoint, config.model), frozenset())
    return known | _dropping.get()


def sent_fields(decision: CacheDecision) -> frozenset[str]:
    """The hint fields a request carrying ``decision`` has."""
    fields = {CACHE_CONTROL} if decision.breakpoints else set()
    if decision.cache_key is not None:
        fields.add(KEY)
    if decision.retention is not None:
        fields.add(RETENTION)
    return frozenset(fields)


class HintsRefused(ProviderError):
    """The provider refused a request as invalid once hints were added. ``drop`` is what the
    next attempt leaves out; ``decision`` what the refused request carried. Only
    ``ResendWithoutHints`` sees it: it is never retried as it is."""

    def __init__(self, error: ProviderError, decision: CacheDecision, drop: frozenset[str]):
        super().__init__(str(error), unbilled=error.unbilled, status=error.status)
        self.decision = decision
        self.drop = drop


def refusal(
    surface: str, config: ModelConfig, decision: CacheDecision, error: ProviderError
) -> HintsRefused:
    """Remember the fields ``error`` names, and say what the next attempt leaves out."""
    sent = sent_fields(decision)
    named = frozenset(field for field in sent if field in str(error))
    if named:
        with _refused_lock:
            where = (surface, config.endpoint, config.model)
            _refused[where] = _refused.get(where, frozenset()) | named
    drop = _dropping.get() | named
    if not named and RETENTION in sent:
        drop |= {RETENTION}  # the field taken least often goes first
    elif not named or KEY in named or CACHE_CONTROL in named:
        drop = ALL_HINTS  # retention means nothing without its key
    return HintsRefused(error, decision, drop)


class ResendWithoutHints:
    """``inner`` (the pooled, governed provider), whose request refused for its hints is sent
    again, as a new attempt, with fewer of them; the response's decision says ``refused``."""

    def __init__(self, inner: ModelProvider) -> None:
        self._inner = inner

    def complete(
        self,
        config: ModelConfig,
        messages: list[Message],
        cancel: CancelToken,
        tools: list[ToolInfo],
    ) -> ModelResponse:
        drop: frozenset[str] = frozenset()
        refused: CacheDecision | None = None
        # Each refusal drops at least one more field, and an attempt with every field dropped
        # adds none (it cannot be refused for them): at most three sends.
        while True:
            token = _dropping.set(drop)
            try:
                response = self._inner.complete(config, messages, cancel, tools)
            except HintsRefused as error:
                refused = refused or error.decision
                drop = error.drop
                continue
            finally:
                _dropping.reset(token)
            if refused is not None:
                sent = response.cache or refused
                response.cache = sent.model_copy(update={"refused": True})
            return response
