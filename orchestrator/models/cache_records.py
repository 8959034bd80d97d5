"""What a model call's record says about its prompt and the cache hints it carried.

A record never holds prompt content: each block of the request (a tool definition, the system
prompt, a message or one part of it) is its kind, a hash of its content and an estimate of its
tokens. That is all the cache learner needs to see which parts of an agent's requests stay the
same from call to call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Literal, Protocol

from pydantic import BaseModel, Field

CacheMode = Literal["off", "observe", "apply"]
"""``off``: no prompt shape is recorded, nothing changes. ``observe`` (the default): calls are
recorded for the cache learner, requests go out unchanged. ``apply``: the learned plan adds
provider cache hints to requests where they pay."""


class PromptBlock(BaseModel):
    """One block of a request, in prompt order."""

    kind: str
    """``tool`` (a tool definition), ``output_schema`` (the schema an answer must match),
    ``system``, a message role (``user``, ``assistant``,
    ``tool_result`` for OpenAI's ``tool`` messages), a role and
    content-part type (``assistant.tool_use``, ``user.tool_result``) or a Responses item type
    (``function_call``, ``function_call_output``)."""
    hash: str
    """The first 16 hex digits of sha256 of the block's canonical JSON (keys sorted, cache
    hints left out): a tool schema with its keys in another order hashes the same."""
    tokens: int = Field(ge=0)
    """An estimate: the block's bytes over ``CacheGovernorConfig.bytes_per_token``."""


class CacheDecision(BaseModel):
    """The cache hints the governor added to one request (``apply`` mode)."""

    breakpoints: list[int] = Field(default_factory=list)
    """Indices of the blocks given an Anthropic ``cache_control`` breakpoint."""
    ttl: Literal["5m", "1h"] | None = None
    cache_key: str | None = None
    """The OpenAI ``prompt_cache_key`` sent."""
    retention: str | None = None
    """The OpenAI ``prompt_cache_retention`` sent."""
    expected_gain_tokens: float = 0.0
    """What the plan expected to save, in input-token prices (the planner's net gain)."""
    refused: bool = False
    """The provider refused the request with the hints first planned (an invalid-request
    answer, 400 or 422): it was sent again with fewer (the retention dropped first) or none;
    the other fields are what the request finally sent carried (the first plan's when it
    carried none)."""


class HashedBlock(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def hash(self) -> str: ...


def toolset_hash(blocks: Iterable[HashedBlock]) -> str:
    """The tool set a request offered, whatever the order of its tools, and the output schema
    it asked for (an agent asked for another shape of answer is another kind of request):
    12 hex digits."""
    tools = sorted(block.hash for block in blocks if block.kind in ("tool", "output_schema"))
    return hashlib.sha256("|".join(tools).encode()).hexdigest()[:12]
