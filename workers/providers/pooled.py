"""A wrapper that makes every model call attempt take a slot of its shared provider pool.

It wraps each HTTP attempt, inside the retries (``Retrying(Pooled(base))``): every attempt takes
its own slot and counts once against the per-minute limit, and a back-off between attempts
holds no slot.
"""

from __future__ import annotations

from functools import cache

import redis

from orchestrator.config.settings import PoolLimit
from orchestrator.models import Message, ModelConfig, utcnow
from orchestrator.tools import ToolInfo
from workers.execution.cancellation import CancelToken
from workers.limits import SharedLimit
from workers.providers.base import ModelProvider, ModelResponse


class PooledProvider:
    """Calls ``inner`` within the pool configured for ``provider:model`` (else ``provider``);
    with no pool configured, calls it directly.

    Parameters:
        inner: the provider.
        client: the state Redis, where pools are counted for all workers.
        limits: pools by ``provider:model`` or ``provider``.
        lease_s: how long a dead holder keeps its slot (``settings.lease_s``).
    """

    def __init__(
        self,
        inner: ModelProvider,
        client: redis.Redis,
        limits: dict[str, PoolLimit],
        lease_s: float,
    ) -> None:
        self._inner = inner
        self._client = client
        self._limits = limits
        self._lease_s = lease_s

    def complete(
        self,
        config: ModelConfig,
        messages: list[Message],
        cancel: CancelToken,
        tools: list[ToolInfo],
    ) -> ModelResponse:
        pool = self._pool(config.provider, config.model)
        if pool is None:
            return self._inner.complete(config, messages, cancel, tools)
        with pool.hold(cancel):
            started = utcnow()
            response = self._inner.complete(config, messages, cancel, tools)
            ended = utcnow()
        response.started_at, response.ended_at = started, ended
        return response

    def _pool(self, provider: str, model: str) -> SharedLimit | None:
        for name in (f"{provider}:{model}", provider):
            if name in self._limits:
                return _limit(self._client, name, self._limits[name], self._lease_s)
        return None


@cache
def _limit(client: redis.Redis, name: str, limit: PoolLimit, lease_s: float) -> SharedLimit:
    return SharedLimit(client, f"provider:{name}", limit.max_concurrent, limit.rpm, lease_s)
