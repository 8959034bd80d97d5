"""Tools the benchmarks call: waits (async and sync), independent lookups, and a note pad
whose reads depend on its writes."""

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


# The note pad of one worker process. An agent's tool calls run in its own worker, so a
# read_note sees the write_note of the same run when the write has ended before the read began.
_NOTES: dict[str, str] = {}


@tool
async def write_note(key: str, text: str, ms: int) -> str:
    """Store ``text`` under ``key``. The write lands when the call ends, after ``ms``."""
    await asyncio.sleep(ms / 1000)
    _NOTES[key] = text
    return "written"


@tool
async def read_note(key: str, ms: int) -> str:
    """The note under ``key`` as it is when the call starts, returned after ``ms``. Fails when
    no write of ``key`` has landed yet: a read run alongside its write is a stale read."""
    text = _NOTES.pop(key, None)  # each note is read once: the pad stays small
    await asyncio.sleep(ms / 1000)
    if text is None:
        raise LookupError(f"no note {key!r}: the read began before its write landed")
    return text
