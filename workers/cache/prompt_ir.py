"""A provider-native request as blocks: the prompt IR the cache governor plans over.

Blocks come in prompt order (tools, the output schema, then the system prompt, then
messages), each with the path of the JSON value it was read from, so that a translator can put
a hint on it. A block's hash is over its canonical JSON (sorted keys, no whitespace) without any
``cache_control``, so a tool schema hashes the same whatever the order of its keys, and a
request hashes the same before and after hints are added.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from orchestrator.models.cache_records import PromptBlock

Path = tuple[str | int, ...]

ANTHROPIC = "anthropic.messages"
OPENAI_CHAT = "openai.chat"
OPENAI_RESPONSES = "openai.responses"
SURFACES = frozenset({ANTHROPIC, OPENAI_CHAT, OPENAI_RESPONSES})
OUTPUT_SCHEMA = "output_schema"
"""The kind of the block of an agent's output schema: the same on every call of the agent, part
of the stable prefix the providers render before the conversation; no cache hint goes on it."""
SCHEMA_PATHS: dict[str, tuple[str, ...]] = {
    OPENAI_CHAT: ("response_format",),
    OPENAI_RESPONSES: ("text", "format"),
    ANTHROPIC: ("output_config", "format"),
}


@dataclass(frozen=True)
class IRBlock:
    """A block: its kind, content hash, token estimate, and where it sits in the body."""

    kind: str
    hash: str
    tokens: int
    path: Path

    def record(self) -> PromptBlock:
        return PromptBlock(kind=self.kind, hash=self.hash, tokens=self.tokens)


def canonical(value: Any) -> str:
    """``value`` as canonical JSON, without ``cache_control`` at any depth."""
    return json.dumps(_without_hints(value), sort_keys=True, separators=(",", ":"), default=str)


def _without_hints(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_hints(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_without_hints(item) for item in value]
    return value


def make_block(kind: str, value: Any, path: Path, bytes_per_token: float) -> IRBlock:
    text = canonical(value).encode()
    digest = hashlib.sha256(text).hexdigest()[:16]
    return IRBlock(kind, digest, max(1, math.ceil(len(text) / bytes_per_token)), path)


def prompt_blocks(surface: str, body: dict[str, Any], bytes_per_token: float) -> list[IRBlock]:
    """The blocks of ``body``, a request of ``surface``; [] for a surface without blocks."""
    if surface not in SURFACES:
        return []
    blocks = [
        make_block("tool", tool, ("tools", i), bytes_per_token)
        for i, tool in enumerate(body.get("tools") or [])
    ]
    schema: Any = body
    for step in SCHEMA_PATHS[surface]:
        schema = schema.get(step) if isinstance(schema, dict) else None
    if schema:
        blocks.append(make_block(OUTPUT_SCHEMA, schema, SCHEMA_PATHS[surface], bytes_per_token))
    if surface == ANTHROPIC:
        blocks += _parts("system", body.get("system"), ("system",), bytes_per_token)
        for m, message in enumerate(body.get("messages") or []):
            role = str(message.get("role", "message"))
            content = message.get("content")
            blocks += _parts(role, content, ("messages", m, "content"), bytes_per_token)
    elif surface == OPENAI_CHAT:
        for m, message in enumerate(body.get("messages") or []):
            # A ``tool`` message is a tool's result, not a tool definition.
            role = str(message.get("role", "message")).replace("tool", "tool_result")
            blocks.append(make_block(role, message, ("messages", m), bytes_per_token))
    else:
        if body.get("instructions"):
            blocks.append(
                make_block("system", body["instructions"], ("instructions",), bytes_per_token)
            )
        items = body.get("input") or []
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
        for i, item in enumerate(items):
            kind = str(item.get("type") or item.get("role") or "item")
            blocks.append(make_block(kind, item, ("input", i), bytes_per_token))
    return blocks


def _parts(kind: str, content: Any, path: Path, bytes_per_token: float) -> list[IRBlock]:
    """A string is one block (of ``kind``); a list is a block per part (``kind.type``)."""
    if content is None or content == "":
        return []
    if isinstance(content, list):
        return [
            make_block(f"{kind}.{part.get('type', 'part')}", part, (*path, p), bytes_per_token)
            for p, part in enumerate(content)
        ]
    # A string is read as the one text block it stands for, so that it hashes the same as
    # the array form a translator turns it into.
    return [make_block(kind, {"type": "text", "text": content}, path, bytes_per_token)]


def previous_call_end(blocks: list[IRBlock]) -> int | None:
    """The index of the last block the previous call of this conversation sent: the block
    before the last assistant turn (None without one). A turn of an agent loop appends the
    model's answer and the tool results to what the previous call sent."""
    for index in range(len(blocks) - 1, 0, -1):
        if blocks[index].path[0] in ("messages", "input") and _is_assistant(blocks[index]):
            first = index
            while first > 0 and _same_message(blocks[first - 1], blocks[index]):
                first -= 1
            return first - 1 if first > 0 else None
    return None


def _is_assistant(block: IRBlock) -> bool:
    return block.kind in ("assistant", "function_call") or block.kind.startswith("assistant.")


def _same_message(a: IRBlock, b: IRBlock) -> bool:
    # Parts of one Anthropic message share the path up to the message index.
    return len(a.path) == 4 and len(b.path) == 4 and a.path[:2] == b.path[:2]
