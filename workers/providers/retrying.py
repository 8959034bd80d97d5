"""A wrapper that retries rate-limited and failing model calls with backoff.

It honours the provider's ``Retry-After`` when there is one, else backs off exponentially with
jitter; its waits end at once when the run is cancelled. Provider SDKs' own retries are off, so
this is the only retry policy, the same for every provider.
"""

from __future__ import annotations

import random

from orchestrator.models import Message, ModelConfig
from orchestrator.tools import ToolInfo
from workers.execution.cancellation import CancelToken
from workers.providers.base import ModelProvider, ModelResponse, RetryableProviderError

MAX_BACKOFF_S = 30.0


class RetryingProvider:
    """Retries ``inner`` up to ``retries`` times on ``RetryableProviderError``.

    Parameters:
        inner: the provider.
        retries: retries after the first attempt.
        base_delay_s: the first backoff; it doubles each retry, up to 30 s.
    """

    def __init__(self, inner: ModelProvider, retries: int, base_delay_s: float = 0.5) -> None:
        self._inner = inner
        self._retries = retries
        self._base_delay_s = base_delay_s

    def complete(
        self,
        config: ModelConfig,
        messages: list[Message],
        cancel: CancelToken,
        tools: list[ToolInfo],
    ) -> ModelResponse:
        attempt = 0
        while True:
            try:
                return self._inner.complete(config, messages, cancel, tools)
            except RetryableProviderError as failure:
                if attempt >= self._retries:
                    raise
                backoff = min(self._base_delay_s * 2**attempt, MAX_BACKOFF_S)
                delay = failure.retry_after_s
                if delay is None:
                    delay = backoff * random.uniform(0.5, 1.0)
                attempt += 1
                cancel.sleep(min(delay, MAX_BACKOFF_S))
