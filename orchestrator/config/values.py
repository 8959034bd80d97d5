"""The structured values of the settings: prices, endpoints, shared provider pools and
concurrency group limits."""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.state.keys import GROUP_NAME


class Price(BaseModel):
    """USD per million tokens of one model: ``input`` (uncached), ``output``, ``cached_input``
    (cache reads) and ``cache_write``; the two cache prices fall back to the input price."""

    model_config = ConfigDict(frozen=True)

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)


class Endpoint(BaseModel):
    """Where a provider's model is served, and which variable of the worker's environment
    holds its key (the provider's default variable when None)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    base_url: str
    api_key_env: str | None = None


class PoolLimit(BaseModel):
    """A limit shared by every worker: calls at once, calls per minute, and tokens per minute
    (each call counted at the bound its budget reserves, then at the usage reported; see
    ``workers/providers/pooled.py``). ``window_s`` is the provider's minute (shorter in tests)."""

    model_config = ConfigDict(frozen=True)

    max_concurrent: int | None = Field(default=None, ge=1)
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    window_s: float = Field(default=60.0, gt=0, allow_inf_nan=False)


def parse_group_limits(value: object) -> dict[str, int]:
    """``ORCHESTRATOR_GROUP_LIMITS``: a JSON object of concurrency group name -> the most
    members of the group's runs in flight at once, a positive integer; ``ValueError`` naming
    the first thing wrong."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise ValueError('a JSON object of group name -> limit was expected, e.g. {"team-a": 50}')
    for name, limit in value.items():
        if not isinstance(name, str) or not GROUP_NAME.match(name):
            raise ValueError(
                f"group {name!r}: a group name is 1 to 64 letters, digits, '_', '.' or '-', "
                "starting with a letter or a digit"
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            shown = json.dumps(limit, default=repr)
            raise ValueError(f"group {name!r}: the limit must be a positive integer, not {shown}")
    return dict(value)
