"""A model's reasoning, as an assistant message keeps it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ThinkingBlock(BaseModel):
    """A model's reasoning as its provider returned it (Anthropic's ``thinking`` and
    ``redacted_thinking`` blocks), kept whole, signature included, so that it can go back with
    the tool calls it led to, as the provider requires."""

    type: Literal["thinking", "redacted_thinking"]
    thinking: str = ""
    signature: str = ""
    data: str = ""
    """The encrypted reasoning of a ``redacted_thinking`` block."""
