"""Tools the tool fan-out benchmark calls: 100 ms of waiting, async and sync."""

from __future__ import annotations

import asyncio
import time

from orchestrator import tool


@tool
async def wait_async(ms: int) -> str:
    """Wait ``ms`` without blocking a thread."""
    await asyncio.sleep(ms / 1000)
    return "ok"


@tool
def wait_sync(ms: int) -> str:
    """Block a thread for ``ms``."""
    time.sleep(ms / 1000)
    return "ok"
