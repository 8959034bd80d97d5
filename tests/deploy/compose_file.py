"""``docker-compose.yml`` as compose reads it: its services, ``${...}`` interpolation, each
service's environment and build arguments. Shared by the compose and image tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
WORKERS = ("coordinator", "agents", "tools", "learner")
# Every service but Redis runs the project's image.
IMAGE_SERVICES = (*WORKERS, "flower")
_VARIABLE = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """``value`` with ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}`` replaced from
    ``env`` as compose does; an unset or empty ``:?`` variable is compose's refusal to start."""

    def one(found: re.Match[str]) -> str:
        name, kind, text = found.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise LookupError(f"compose refuses to start: {text}")
        return text if kind == "-" else ""

    return _VARIABLE.sub(one, value)


def service_environment(name: str, dotenv: dict[str, str]) -> dict[str, str]:
    """Service ``name``'s ``environment``, interpolated from ``dotenv`` (the .env file)."""
    environment: dict[str, Any] = SERVICES[name].get("environment", {})
    return {key: interpolate(str(value), dotenv) for key, value in environment.items()}


def build_args(name: str, dotenv: dict[str, str]) -> dict[str, str]:
    """The ``--build-arg`` values compose passes when it builds service ``name``'s image."""
    build = SERVICES[name]["build"]
    arguments: dict[str, Any] = {} if isinstance(build, str) else build.get("args", {})
    return {key: interpolate(str(value), dotenv) for key, value in arguments.items()}
