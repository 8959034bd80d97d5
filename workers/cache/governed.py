"""The provider wrapper that puts the cache governor on a model surface's request path.

It sits innermost, around the surface itself
(Retrying(Budgeted(ResendWithoutHints(Pooled(Governed(surface)))))), so that each attempt
sends the same hinted request and the budget bounds the request as sent. In ``observe`` mode it
only records the request's blocks; in ``apply`` mode it plans from the agent's learned profile
and adds the surface's hints. It fails open: a plan that cannot be read or applied leaves the
request as it was, and a request the provider refuses as invalid once hints were added is sent
again, as an attempt of its own, with fewer or none (``workers.cache.refusals``; the decision
says ``refused``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.config.governor import CacheGovernorConfig
from orchestrator.models import Message, ModelConfig
from orchestrator.models.cache_records import CacheDecision, CacheMode, toolset_hash
from orchestrator.plans.cache_plans import CachePlan, CacheProfile, learning_key
from orchestrator.tools import ToolInfo
from workers.cache.planner import plan_breakpoints
from workers.cache.prompt_ir import (
    ANTHROPIC,
    OPENAI_CHAT,
    OPENAI_RESPONSES,
    OUTPUT_SCHEMA,
    IRBlock,
    previous_call_end,
    prompt_blocks,
)
from workers.cache.refusals import CACHE_CONTROL, KEY, RETENTION, refusal, refused_fields
from workers.cache.translate import (
    caller_marks,
    count_breakpoints,
    openai_hints,
    with_breakpoints,
)
from workers.execution.cancellation import CancelToken
from workers.providers.base import (
    ModelResponse,
    ModelSurface,
    ProviderError,
    RetryableProviderError,
)
from workers.providers.http_common import BodySurface
from workers.tools.wire_names import restore_names

log = logging.getLogger(__name__)

HINT_TOKENS = 512
"""More than the hints can add to a request's input bound (four ``cache_control`` markers
with the array forms they need, or a cache key and retention)."""


INVALID_REQUEST_STATUSES = frozenset({400, 422})
"""The answers of a provider refusing a request as invalid (OpenAI-compatible servers answer
an unknown field with either)."""


def _invalid_request(error: ProviderError) -> bool:
    return (
        not isinstance(error, RetryableProviderError) and error.status in INVALID_REQUEST_STATUSES
    )


@dataclass(frozen=True)
class CacheContext:
    """Whose call this is: the agent (its plan), its mode, and its conversation (one agent
    execution: an OpenAI conversation keeps one cache key)."""

    agent_id: str
    mode: CacheMode
    conversation: str
    keys: dict[str, tuple[str, str | None]] = field(default_factory=dict, compare=False)
    """The OpenAI key and retention the conversation took at its first keyed call, by learning
    key: kept for its life, though a plan updated meanwhile would shard it elsewhere."""


class GovernedSurface:
    """``surface`` with the cache governor on its requests.

    Parameters:
        surface: the model surface; one without request bodies passes through.
        context: the call's agent, mode and conversation.
        plans: the agent's cache plan (a worker's hot cache).
        config: the governor's numbers.
    """

    def __init__(
        self,
        surface: ModelSurface,
        context: CacheContext,
        plans: Callable[[str], CachePlan | None],
        config: CacheGovernorConfig,
    ) -> None:
        self._surface = surface
        self._context = context
        self._plans = plans
        self._config = config

    def input_token_bound(
        self, config: ModelConfig, messages: list[Message], tools: list[ToolInfo]
    ) -> int:
        """The surface's bound, plus room for the hints (planned only when the call is made)."""
        bound = self._surface.input_token_bound(config, messages, tools)
        return bound + (HINT_TOKENS if self._context.mode == "apply" else 0)

    def complete(
        self,
        config: ModelConfig,
        messages: list[Message],
        cancel: CancelToken,
        tools: list[ToolInfo],
    ) -> ModelResponse:
        surface = self._surface
        if self._context.mode == "off" or not isinstance(surface, BodySurface):
            return surface.complete(config, messages, cancel, tools)
        body = surface.request_body(config, messages, tools)
        blocks = prompt_blocks(surface.surface, body, self._config.bytes_per_token)
        decision: CacheDecision | None = None
        if self._context.mode == "apply" and blocks:
            try:
                decision, body = self._apply(surface.surface, config, body, blocks)
            except Exception:  # fail open: the request goes out as it was
                log.exception("cache governor: request left unchanged")
                decision = None
        response, decision = self._send(surface, config, body, decision, cancel)
        restore_names(response, tools)
        response.prompt = [block.record() for block in blocks]
        response.cache = decision
        return response

    def _send(
        self,
        surface: BodySurface,
        config: ModelConfig,
        body: dict[str, Any],
        decision: CacheDecision | None,
        cancel: CancelToken,
    ) -> tuple[ModelResponse, CacheDecision | None]:
        """Send ``body``; when the provider refuses it as an invalid request and the governor
        added hints, raise ``HintsRefused``: ``ResendWithoutHints``, outside the pool, sends
        it again with fewer hints, as an attempt of its own."""
        try:
            return surface.send(config, body, cancel), decision
        except ProviderError as error:
            if decision is None or not _invalid_request(error):
                raise
            log.warning("cache governor: %s refused the hints; sending again", surface.surface)
            raise refusal(surface.surface, config, decision, error) from None

    def _profile(self, surface: str, model: str, blocks: list[IRBlock]) -> CacheProfile | None:
        plan = self._plans(self._context.agent_id)
        if plan is None:
            return None
        return plan.profiles.get(learning_key(surface, model, toolset_hash(blocks)))

    def _apply(
        self, surface: str, model_config: ModelConfig, body: dict[str, Any], blocks: list[IRBlock]
    ) -> tuple[CacheDecision | None, dict[str, Any]]:
        model = model_config.model
        profile = self._profile(surface, model, blocks)
        if profile is None:
            return None, body
        config = self._config
        refused = refused_fields(surface, model_config)
        if surface == ANTHROPIC and CACHE_CONTROL not in refused:
            plan = plan_breakpoints(
                [block.hash for block in blocks],
                [block.tokens for block in blocks],
                profile,
                config,
                previous_end=previous_call_end(blocks),
                reserved=count_breakpoints(body),
                caller=caller_marks(body, blocks),
                unmarkable=[i for i, block in enumerate(blocks) if block.kind == OUTPUT_SCHEMA],
            )
            if plan is None:
                return None, body
            decision = CacheDecision(
                breakpoints=plan.breakpoints, ttl=plan.ttl, expected_gain_tokens=plan.gain
            )
            return decision, with_breakpoints(body, blocks, plan.breakpoints, plan.ttl)
        if (
            surface in (OPENAI_CHAT, OPENAI_RESPONSES)
            and KEY not in refused
            and "prompt_cache_key" not in body
        ):
            seed = f"{self._context.agent_id}|{learning_key(surface, model, profile.toolset)}"
            # A conversation keeps one key, so that its turns meet their own prefix: the key's
            # shard follows the plan's calls per minute, which learners raise while it runs.
            hints = self._context.keys.get(seed)
            if hints is None:
                hints = openai_hints(blocks, profile, config, seed, self._context.conversation)
                if hints is None:
                    return None, body
                self._context.keys[seed] = hints
            key, retention = hints
            hinted = {**body, "prompt_cache_key": key}
            if RETENTION in refused:
                retention = None
            if retention is not None and "prompt_cache_retention" not in body:
                hinted["prompt_cache_retention"] = retention
            return CacheDecision(cache_key=key, retention=retention), hinted
        return None, body
