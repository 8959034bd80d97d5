"""Which workers are alive, and which tools they serve, without a SCAN.

Each worker's watchdog pushes its presence expiry on in ``ao:workers`` (a sorted set hostname
-> expiry in ms, Redis's clock) every pass, and the TTL of its tools key with it. A worker that
stops removes both at once; a killed one drops out when its presence expires.
"""

from __future__ import annotations

from typing import cast

import redis
from pydantic import TypeAdapter

from orchestrator.state.connection import get_many
from orchestrator.state.keys import WORKERS, worker_mcp_key, worker_names_key, worker_tools_key
from orchestrator.state.scripts import run_script
from orchestrator.tools import McpServerInfo, ToolInfo

TOOL_LIST: TypeAdapter[list[ToolInfo]] = TypeAdapter(list[ToolInfo])
MCP_LIST: TypeAdapter[list[McpServerInfo]] = TypeAdapter(list[McpServerInfo])
SERVED_NAMES: TypeAdapter[dict[str, list[str]]] = TypeAdapter(dict[str, list[str]])


def _now_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def live_workers(client: redis.Redis) -> list[str]:
    """Host names of the workers whose presence has not expired, sorted."""
    names = cast(list[bytes], client.zrangebyscore(WORKERS, f"({_now_ms(client)}", "+inf"))
    return sorted(name.decode() for name in names)


def live_tools(client: redis.Redis) -> list[ToolInfo]:
    """The tools the live workers serve, by name (the first live worker's entry wins)."""
    hostnames = live_workers(client)
    if not hostnames:
        return []
    by_name: dict[str, ToolInfo] = {}
    for raw in get_many(client, [worker_tools_key(name) for name in hostnames]):
        if raw is not None:
            for info in TOOL_LIST.validate_json(raw):
                by_name.setdefault(info.name, info)
    return [by_name[name] for name in sorted(by_name)]


def live_mcp_servers(client: redis.Redis) -> dict[str, list[McpServerInfo]]:
    """The MCP servers of each live worker that has any, by hostname."""
    hostnames = live_workers(client)
    raws = get_many(client, [worker_mcp_key(name) for name in hostnames]) if hostnames else []
    return {
        name: servers
        for name, raw in zip(hostnames, raws, strict=True)
        if raw is not None and (servers := MCP_LIST.validate_json(raw))
    }


def publish_mcp(
    client: redis.Redis, hostname: str, servers: list[McpServerInfo], ttl_ms: int
) -> None:
    """Tell clients the state of worker ``hostname``'s MCP servers, for ``ttl_ms``."""
    client.set(worker_mcp_key(hostname), MCP_LIST.dump_json(servers), px=ttl_ms)


def live_names(client: redis.Redis, kind: str) -> list[str]:
    """The names of one ``kind`` (``strategies``, ``endpoints``) the live workers serve."""
    hostnames = live_workers(client)
    if not hostnames:
        return []
    names: set[str] = set()
    for raw in get_many(client, [worker_names_key(name) for name in hostnames]):
        if raw is not None:
            names.update(SERVED_NAMES.validate_json(raw).get(kind, []))
    return sorted(names)


def publish_tools(client: redis.Redis, hostname: str, tools: list[ToolInfo], ttl_ms: int) -> None:
    """Tell clients which tools worker ``hostname`` serves (so that unknown tools are refused
    at submit), for ``ttl_ms``: its watchdog keeps the key alive with its presence."""
    client.set(worker_tools_key(hostname), TOOL_LIST.dump_json(tools), px=ttl_ms)


def publish_names(
    client: redis.Redis, hostname: str, served: dict[str, list[str]], ttl_ms: int
) -> None:
    """Tell clients what worker ``hostname`` serves by name (``{"strategies": [...],
    "endpoints": [...]}``: names only, never URLs or keys), for ``ttl_ms``."""
    client.set(worker_names_key(hostname), SERVED_NAMES.dump_json(served), px=ttl_ms)


def refresh(client: redis.Redis, hostname: str, ttl_ms: int) -> bool:
    """Push the worker's presence (a script, which also drops expired workers), then its
    tools and names keys, to now + ``ttl_ms``; False when one of those keys is gone and must be
    written again. Not one script: on a Redis Cluster the keys live on different shards."""
    run_script(client, "worker_presence", [WORKERS], [hostname, ttl_ms], common=False)
    with client.pipeline(transaction=False) as pipe:
        pipe.pexpire(worker_tools_key(hostname), ttl_ms)
        pipe.pexpire(worker_names_key(hostname), ttl_ms)
        pipe.pexpire(worker_mcp_key(hostname), ttl_ms)
        tools, names, _ = pipe.execute()  # the MCP key is written again with the tools key
    return bool(tools) and bool(names)


def leave(client: redis.Redis, hostname: str) -> None:
    """The worker stops: it leaves the live workers, and its tools with it."""
    with client.pipeline(transaction=False) as pipe:
        pipe.zrem(WORKERS, hostname)
        # One key per DEL: on a Redis Cluster they live on different shards.
        pipe.delete(worker_tools_key(hostname))
        pipe.delete(worker_names_key(hostname))
        pipe.delete(worker_mcp_key(hostname))
        pipe.execute()
