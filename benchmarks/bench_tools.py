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


@tool
async def lookup_a(ms: int) -> str:
    """One of four independent lookups."""
    await asyncio.sleep(ms / 1000)
    return "a"


@tool
async def lookup_b(ms: int) -> str:
    """One of four independent lookups."""
    await asyncio.sleep(ms / 1000)
    return "b"


@tool
async def lookup_c(ms: int) -> str:
    """One of four independent lookups."""
    await asyncio.sleep(ms / 1000)
    return "c"


@tool
async def lookup_d(ms: int) -> str:
    """One of four independent lookups."""
    await asyncio.sleep(ms / 1000)
    return "d"
