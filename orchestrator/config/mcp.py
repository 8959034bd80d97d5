"""``ORCHESTRATOR_MCP_SERVERS``: the MCP servers whose tools a worker serves, set by its operator.

A JSON object of server name -> server. A stdio server is a command the worker starts (and
keeps, restarting it when it dies); a streamable-HTTP server is a URL it connects to::

    {"files": {"command": ["python", "-m", "files_server"], "env": {"ROOT": "/data"}},
     "search": {"url": "http://search:8000/mcp", "headers_env": {"Authorization": "SEARCH_TOKEN"}}}

Their tools are served as ``{server}.{tool}``. Clients name those tools only: a command, a URL,
a header or an environment variable comes from this setting alone. An HTTP server's headers
are read from the worker's environment variables that ``headers_env`` names, when the worker
connects; ``env`` values are masked wherever the settings are shown.
"""

from __future__ import annotations

import json
import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""A server's name: no ``.``, which separates it from its tools' names."""
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class McpServerLimits(BaseModel):
    """What applies to every tool of one server (as ``@tool``'s options do to one tool).

    Attributes:
        timeout_s: a deadline per call (else the agent's ``ToolPolicy.timeout_s``).
        max_concurrency: the most calls of each of its tools at once across all workers.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_concurrency: int | None = Field(default=None, ge=1)


class StdioMcpServer(McpServerLimits):
    """A server the worker starts as a child process and talks to on its stdin and stdout.

    Attributes:
        command: the program and its arguments.
        env: variables set for it, over a minimal environment (``PATH``, ``HOME``...): the
            worker's own variables (its API keys) are not passed on.
        cwd: its working directory (the worker's when None).
    """

    command: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    env: dict[str, SecretStr] = Field(default_factory=dict)
    cwd: str | None = None

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name in env:
            if not ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not a variable name")
        return env


class HttpMcpServer(McpServerLimits):
    """A streamable-HTTP server the worker connects to.

    Attributes:
        url: its MCP endpoint (``http://`` or ``https://``).
        headers_env: header name -> the worker's environment variable holding its value (a
            token, read when the worker connects; never written anywhere).
    """

    url: str
    headers_env: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("an http:// or https:// URL was expected")
        return url

    @field_validator("headers_env")
    @classmethod
    def _header_names(cls, headers: dict[str, str]) -> dict[str, str]:
        for header, variable in headers.items():
            if not HEADER_NAME.match(header):
                raise ValueError(f"{header!r} is not a header name")
            if not ENV_NAME.match(variable):
                raise ValueError(f"{variable!r} is not a variable name")
        return headers


McpServer = StdioMcpServer | HttpMcpServer


def parse_mcp_servers(value: object) -> dict[str, McpServer]:
    """``ORCHESTRATOR_MCP_SERVERS`` as servers by name; ``ValueError`` naming the first thing
    wrong (never a value: an ``env`` value may be a secret)."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON ({error.msg} at position {error.pos})") from None
    if not isinstance(value, dict):
        raise ValueError('a JSON object of server name -> server was expected, e.g. {"files": ...}')
    servers: dict[str, McpServer] = {}
    for name, server in value.items():
        if not isinstance(name, str) or not SERVER_NAME.match(name):
            raise ValueError(
                f"server {name!r}: a server name is 1 to 64 letters, digits, '_' or '-'"
            )
        servers[name] = _server(name, server)
    return servers


def _server(name: str, server: object) -> McpServer:
    if isinstance(server, StdioMcpServer | HttpMcpServer):
        return server
    if not isinstance(server, dict) or ("command" in server) == ("url" in server):
        raise ValueError(f"server {name!r}: give either a command (stdio) or a url (HTTP)")
    kind: type[McpServer] = StdioMcpServer if "command" in server else HttpMcpServer
    try:
        return kind.model_validate(server)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        message = str((first.get("ctx") or {}).get("error") or first["msg"])
        raise ValueError(f"server {name!r}: {where}: {message}") from None
