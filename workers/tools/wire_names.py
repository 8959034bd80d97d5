"""Tool names as the provider APIs take them.

OpenAI and Anthropic accept tool names of 1 to 64 letters, digits, ``_`` and ``-``; an MCP
tool is ``{server}.{tool}``. A name they would refuse is sent as its wire name (``.`` becomes
``__``, any other character ``_``, and a name still too long is cut and ends with a digest),
and a tool call the model makes under a wire name is read back as the tool it names.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from orchestrator.tools import ToolInfo

if TYPE_CHECKING:  # the providers import this module
    from workers.providers.base import ModelResponse

_ACCEPTED = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_OTHER = re.compile(r"[^A-Za-z0-9_-]")
MAX_CHARS = 64


def wire_name(name: str) -> str:
    """``name`` as a provider accepts it (itself when it already is and reads back as itself).

    Two tools offered together must never share a wire name, or the model's call of one would
    run the other: ``files.read`` is ``files__read``, so a tool named ``files__read`` (or
    ``a._b`` beside ``a_.b``, ``a.b c`` beside ``a.b_c``) ends with a digest of its name. A
    wire name without a digest reads back as its name (``__`` as ``.``)."""
    wire = _OTHER.sub("_", name.replace(".", "__")) or "_"
    if _ACCEPTED.match(name) and "__" not in name:
        return name
    if wire.replace("__", ".") != name or len(wire) > MAX_CHARS:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        wire = f"{wire[: MAX_CHARS - 9]}_{digest}"
    return wire


def restore_names(response: ModelResponse, tools: list[ToolInfo]) -> ModelResponse:
    """``response`` with its tool calls named as the tools offered (``tools``) are."""
    offered = {wire_name(tool.name): tool.name for tool in tools}
    for call in response.tool_calls:
        call.name = offered.get(call.name, call.name)
    return response
