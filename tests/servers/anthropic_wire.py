"""The Messages API's rule for extended thinking with tools, as its local server enforces it:
with ``thinking`` enabled, an assistant turn that used a tool must come back starting with the
thinking blocks of that turn, unchanged and signed (Anthropic: "When using extended thinking
with tool use ... you must pass thinking blocks back to the API for the last assistant
message"), else the API answers 400."""

from __future__ import annotations

from typing import Any

SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"
THINKING = {"type": "thinking", "thinking": "2 + 3: call add.", "signature": SIGNATURE}


def thinking_rule(body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """A 400 for a request that breaks the rule; None for one that keeps it."""
    if (body.get("thinking") or {}).get("type") != "enabled":
        return None
    for index, message in enumerate(body.get("messages", [])):
        content = message.get("content")
        if message.get("role") != "assistant" or not isinstance(content, list):
            continue
        if any(block.get("type") == "tool_use" for block in content) and content[0] != THINKING:
            found = content[0].get("type")
            return 400, {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "message": f"messages.{index}.content.0.type: Expected `thinking` or "
                    f"`redacted_thinking`, but found `{found}`. When `thinking` is enabled, a "
                    "final `assistant` message must start with a thinking block.",
                },
            }
    return None
