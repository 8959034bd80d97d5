"""A stdio MCP server written with the official SDK, for the tests (``python -m
tests.tools.mcp_files_server``): a few tools that record in Redis (``TEST_REDIS_URL``) what they
did, so that tests see what ran on the server, how many ran at once, and which were cancelled."""

from __future__ import annotations

import asyncio
import os

import redis
from mcp.server.mcpserver import MCPServer

server = MCPServer("files")

_TRACK = """
local now = redis.call('INCR', KEYS[1])
if now > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], now) end
return now
"""


def _redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ["TEST_REDIS_URL"])


@server.tool()
async def read(path: str) -> str:
    """Read the file at ``path``."""
    return f"contents of {path}"


@server.tool()
async def echo(text: str, delay_ms: int = 0) -> str:
    """Return ``text`` after ``delay_ms``."""
    await asyncio.sleep(delay_ms / 1000)
    return text


@server.tool()
async def slow(key: str, seconds: float) -> str:
    """Sleep ``seconds``; a cancelled call sets ``test:mcp:cancelled:{key}``."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        _redis().set(f"test:mcp:cancelled:{key}", "1")
        raise
    return "slept"


@server.tool()
async def tracked(key: str, delay_ms: int) -> str:
    """Count the calls running under ``key`` at once (``test:{key}:max``)."""
    client = _redis()
    client.eval(_TRACK, 2, f"test:{key}:now", f"test:{key}:max")
    try:
        await asyncio.sleep(delay_ms / 1000)
    finally:
        client.decr(f"test:{key}:now")
    return key


@server.tool()
def pid() -> str:
    """``{worker process id}:{this process's id}``, also added to ``test:mcp:pids:{name}``
    (``name``: the server's, from ``SERVER_NAME``)."""
    value = f"{os.getppid()}:{os.getpid()}"
    _redis().sadd(f"test:mcp:pids:{os.environ.get('SERVER_NAME', '')}", value)
    return value


@server.tool()
def die(key: str) -> str:
    """End the server process at once, without an answer, after setting
    ``test:mcp:died:{key}`` to ``pid()``."""
    _redis().set(f"test:mcp:died:{key}", pid())
    os._exit(3)


@server.tool()
def refuse(reason: str) -> str:
    """Fail with ``reason`` (an error result)."""
    raise ValueError(reason)


if __name__ == "__main__":
    server.run()
