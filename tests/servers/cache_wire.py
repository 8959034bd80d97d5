"""How the cache servers (``tests/servers/cache_servers.py``) cut a request body into the
simulator's blocks, on their own: no client code is used, so a client's mistake shows as a cache
miss.

Tokens are estimated, not counted: ``ceil(UTF-8 bytes / 4)`` of a block's canonical JSON
(sorted keys, no spaces), about what BPE tokenizers give for English text and JSON.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from benchmarks.prompt_cache_sim import Block

BYTES_PER_TOKEN = 4
# OpenAI caches in steps of 128 tokens: blocks of that size make block-level prefix matching
# OpenAI's own granularity.
OPENAI_CHUNK_TOKENS = 128


def canonical(value: Any) -> str:
    """``value`` as canonical JSON: equal content, equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def tokens(value: Any) -> int:
    """The estimated tokens of ``value``: a quarter of its canonical JSON's UTF-8 bytes."""
    return math.ceil(len(canonical(value).encode()) / BYTES_PER_TOKEN)


def anthropic_prompt(body: dict[str, Any]) -> tuple[list[Block], dict[int, str]]:
    """A Messages request as blocks in prompt order (tools, system, messages) and its
    breakpoints (block index -> TTL). Each tool is a block, a string system or each part of
    an array system, a message's string content or each of its content parts. A block's
    identity is its content without ``cache_control``, with where it is (tools, system or the
    message's role) and whether it opens a message; a string is the text part it stands for.
    A top-level ``cache_control`` (automatic mode) marks the last block, unless that block has
    its own marker. Markers nested inside a part (a tool result's content) are not read."""
    blocks: list[Block] = []
    marks: dict[int, str] = {}

    def add(where: str, opens: bool, part: Any) -> None:
        content = part
        if isinstance(part, dict):
            content = {k: v for k, v in part.items() if k != "cache_control"}
            marker = part.get("cache_control")
            if isinstance(marker, dict):
                marks[len(blocks)] = str(marker.get("ttl", "5m"))
        identity = canonical([where, opens, content])
        blocks.append(Block(hashlib.sha256(identity.encode()).hexdigest(), tokens(content)))

    for tool in body.get("tools") or []:
        add("tools", True, tool)
    system = body.get("system")
    for i, part in enumerate(_parts(system) if system else []):
        add("system", i == 0, part)
    for message in body["messages"]:
        for i, part in enumerate(_parts(message["content"])):
            add(str(message["role"]), i == 0, part)
    automatic = body.get("cache_control")
    if isinstance(automatic, dict) and blocks:
        marks.setdefault(len(blocks) - 1, str(automatic.get("ttl", "5m")))
    return blocks, marks


def _parts(content: Any) -> list[Any]:
    # The API reads a string as one text part, so both spellings are the same prompt.
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def chat_prompt(body: dict[str, Any]) -> list[Block]:
    """A Chat Completions request as 128-token blocks of its prompt: the tools, then the
    messages, each as canonical JSON. (Where OpenAI renders tool definitions is not public;
    first, as Anthropic does, makes a change of tools invalidate everything after.)"""
    return openai_blocks([*(body.get("tools") or []), *body["messages"]])


def responses_prompt(body: dict[str, Any]) -> list[Block]:
    """A Responses request as 128-token blocks of its prompt: the tools, the
    ``instructions``, then the input items (a string input is one user message)."""
    items = body.get("input") or []
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    instructions = body.get("instructions")
    head = [{"instructions": instructions}] if instructions else []
    return openai_blocks([*(body.get("tools") or []), *head, *items])


def openai_blocks(parts: list[Any]) -> list[Block]:
    """``parts`` as one text (their canonical JSON, one per line) cut in blocks of
    ``OPENAI_CHUNK_TOKENS`` estimated tokens; the simulator's chain hash makes each block's
    key stand for the whole text before it."""
    text = "\n".join(canonical(part) for part in parts).encode()
    size = OPENAI_CHUNK_TOKENS * BYTES_PER_TOKEN
    chunks = (text[i : i + size] for i in range(0, len(text), size))
    return [
        Block(hashlib.sha256(chunk).hexdigest(), math.ceil(len(chunk) / BYTES_PER_TOKEN))
        for chunk in chunks
    ]
