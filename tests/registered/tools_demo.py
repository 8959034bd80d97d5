"""Tools for the tests, served by the test workers (ORCHESTRATOR_TOOL_MODULES).

Some record what they did in Redis, so that tests can see across worker processes what really
ran, how many ran at once, and which side effects happened.
"""

from __future__ import annotations

import asyncio
import enum
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from pydantic import BaseModel

from orchestrator import idempotency_key, tool

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
    """The host and process this call ran in, and that process's parent (a sync remote tool
    runs in a child process of its tools worker)."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.getppid()}"


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
    """Say it started (``test:started:{key}``), then block a thread until
    ``test:release:{key}`` is pushed (at most a minute)."""
    client = _redis()
    client.incr(f"test:started:{key}")
    end = time.monotonic() + 60
    # Short waits: one longer than the client's socket timeout would end in an error.
    while time.monotonic() < end:
        if client.blpop([f"test:release:{key}"], timeout=1):
            return "released"
    return "never released"


@tool(max_concurrency=1)
def limited_blocks(key: str) -> str:
    """``sync_blocks`` allowed once at a time across all workers."""
    return str(sync_blocks(key))


@tool
def charge(account: str, cents: int) -> str:
    """A side effect to make once: count a charge under ``test:charges:{account}`` and keep
    the idempotency key it ran under in ``test:charge-keys:{account}``."""
    client = _redis()
    client.rpush(f"test:charge-keys:{account}", idempotency_key())
    client.incrby(f"test:charges:{account}", cents)
    return f"charged {cents}"


@tool(remote=True, max_concurrency=1)
def remote_slow_mark(key: str, seconds: float) -> str:
    """A remote side effect after ``seconds``; counts in ``test:overlap:{key}`` every start
    that found another call of it still running (its process alive)."""
    client = _redis()
    running = f"test:running:{key}"
    for pid in client.smembers(running):
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            continue
        client.incr(f"test:overlap:{key}")
    client.sadd(running, os.getpid())
    time.sleep(seconds)
    client.set(f"test:mark:{key}", "1")
    return key


@tool
def slow_report(key: str) -> str:
    """Say it started (``test:started:{key}``), then wait until ``test:release:{key}`` exists
    (read, not taken: a release set while a killed worker still waited is not lost)."""
    client = _redis()
    client.incr(f"test:started:{key}")
    end = time.monotonic() + 60
    while time.monotonic() < end and not client.exists(f"test:release:{key}"):
        time.sleep(0.05)
    return "report ready"


@tool
def big(size: int) -> str:
    """A result of ``size`` characters."""
    return "x" * size


@tool(remote=True)
def remote_key() -> str:
    """The idempotency key this remote call runs under."""
    return idempotency_key()


@tool
async def async_key() -> str:
    """The idempotency key this async call runs under."""
    return idempotency_key()


@tool
def raises_timeout(message: str) -> str:
    """Fail with a socket timeout of the tool's own."""
    raise TimeoutError(message)


class Invoice(BaseModel):
    number: str
    cents: int


class Priority(enum.Enum):
    LOW = "low"
    HIGH = "high"


@tool(remote=True)
def file_invoice(invoice: Invoice, tags: set[str], priority: Priority) -> str:
    """A remote tool whose parameters are a model, a set and an enum."""
    assert isinstance(invoice, Invoice) and isinstance(priority, Priority)
    return f"{invoice.number}:{invoice.cents}:{','.join(sorted(tags))}:{priority.name}"
