"""A streamable-HTTP MCP server written with the official SDK, for the tests (``python -m
tests.tools.mcp_search_server PORT TOKEN``): its tools answer only requests whose ``Authorization``
header is ``Bearer TOKEN`` (others get a 401); ``whoami`` echoes that header back."""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer

server = MCPServer("search")
_seen = {"authorization": ""}


@server.tool()
async def search(query: str, limit: int = 3) -> str:
    """Search the index for ``query``."""
    return f"{limit} results for {query}"


@server.tool()
async def whoami() -> str:
    """The Authorization header the server was sent (a server that echoes credentials)."""
    return f"you sent {_seen['authorization']}"


def guarded(app: Any, token: str) -> Any:
    """``app`` behind a bearer token: what a hosted MCP server asks of its clients."""

    async def guard(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            _seen["authorization"] = headers.get(b"authorization", b"").decode()
            if _seen["authorization"] != f"Bearer {token}":
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"unauthorized"})
                return
        await app(scope, receive, send)

    return guard


def main() -> None:
    port, token = int(sys.argv[1]), sys.argv[2]
    app = guarded(server.streamable_http_app(), token)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
