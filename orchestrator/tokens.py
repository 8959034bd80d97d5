"""A rough token count for budgeting prompts and for the offline model's usage."""

from __future__ import annotations

import math

CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """About four characters a token, at least one for any text."""
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0
