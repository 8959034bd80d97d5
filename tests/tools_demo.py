"""Tools for the tests, served by the test workers (ORCHESTRATOR_TOOL_MODULES).

Some record what they did in Redis, so that tests can see across worker processes what really
ran, how many ran at once, and which side effects happened.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from orchestrator import tool

_TRACK = """
local now = redis.call('INCR', KEYS[1])
if now > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], now) end
return now
"""


def _redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ["ORCHESTRATOR_REDIS_URL"])


@contextmanager
def _tracked(key: str) -> Iterator[None]:
    """Count the calls running under ``key`` and remember the most at once (``key:max``)."""
    client = _redis()
    client.eval(_TRACK, 2, f"test:{key}:now", f"test:{key}:max")
    try:
        yield
    finally:
        client.decr(f"test:{key}:now")


@tool
async def echo(text: str, delay_ms: int = 0) -> str:
    """Return ``text`` after ``delay_ms``."""
    await asyncio.sleep(delay_ms / 1000)
    return text


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def boom(message: str) -> str:
    """Fail at once."""
    raise RuntimeError(message)


@tool
async def mark(key: str, delay_ms: int) -> str:
    """After ``delay_ms``, set ``test:mark:{key}`` (an async side effect)."""
    await asyncio.sleep(delay_ms / 1000)
    _redis().set(f"test:mark:{key}", "1")
    return key


@tool
def sync_mark(key: str, delay_ms: int) -> str:
    """A sync side effect: sleep, then set ``test:mark:{key}``."""
    time.sleep(delay_ms / 1000)
    _redis().set(f"test:mark:{key}", "1")
    return key


@tool
async def tracked(key: str, delay_ms: int) -> str:
    """Sleep while counted under ``key``."""
    with _tracked(key):
        await asyncio.sleep(delay_ms / 1000)
    return key


@tool(max_concurrency=2)
async def scarce(key: str, delay_ms: int) -> str:
    """A tool allowed twice at once across all workers."""
    with _tracked(key):
        await asyncio.sleep(delay_ms / 1000)
    return key


@tool(timeout_s=0.3)
async def hangs(seconds: float) -> str:
    """Sleep longer than its own timeout."""
    await asyncio.sleep(seconds)
    return "finished"


@tool
def sync_sleep(seconds: float) -> str:
    """Block a thread."""
    time.sleep(seconds)
    return "slept"


@tool(remote=True)
def where() -> str:
    """The host and process this call ran in."""
    return f"{socket.gethostname()}:{os.getpid()}"


@tool(remote=True)
def remote_sleep(seconds: float) -> str:
    """Hold a tools worker's slot."""
    time.sleep(seconds)
    return "slept"


@tool(remote=True)
def remote_mark(key: str) -> str:
    """A remote side effect: set ``test:mark:{key}``."""
    _redis().set(f"test:mark:{key}", "1")
    return key


@tool
async def fails_after(seconds: float) -> str:
    """Fail after ``seconds``."""
    await asyncio.sleep(seconds)
    raise RuntimeError("failed on purpose")


@tool
def sync_blocks(key: str) -> str:
    """Block a thread until ``test:release:{key}`` is pushed (at most a minute)."""
    _redis().blpop([f"test:release:{key}"], timeout=60)
    return "released"
