"""What a worker checks before it consumes anything: it starts whole or not at all.

The settings are checked when ``workers.app`` is imported (the app's configuration needs them),
the tool modules when the worker initialises (``worker_init``, before its pool, consumer and
watchdog exist). A failure is one line on stderr, ``error: <cause>``, and a non-zero exit.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from typing import NoReturn

from pydantic import ValidationError
from pydantic_settings import SettingsError

from orchestrator.settings import Settings, get_settings
from workers.strategy_registry import StrategyRegistry
from workers.tool_registry import ToolRegistry

ENV_PREFIX = "ORCHESTRATOR_"


class StartupError(Exception):
    """A worker cannot start; the message is the cause, on one line."""


def _settings_cause(error: ValidationError) -> str:
    """The errors by environment variable, without the values (a URL may hold a password)."""
    causes = []
    for item in error.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in item["loc"])
        ctx = item.get("ctx") or {}
        message = str(ctx["error"]) if item["type"] == "value_error" else item["msg"]
        causes.append(f"{ENV_PREFIX}{field.upper()}: {message}")
    return "; ".join(causes)


def check_settings() -> Settings:
    """The process's settings, or ``StartupError`` naming what is wrong with them."""
    try:
        return get_settings()
    except ValidationError as error:
        raise StartupError(_settings_cause(error)) from None
    except SettingsError as error:  # a value pydantic-settings could not decode (JSON)
        raise StartupError(f"settings: {error}") from None


def _import_cause(error: Exception) -> str:
    if isinstance(error, ImportError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _import_modules(variable: str, module_names: list[str]) -> None:
    """Import each module listed in ``variable``, or ``StartupError`` naming the one that fails."""
    for name in module_names:
        try:
            importlib.import_module(name)
        except Exception as error:
            cause = " ".join(_import_cause(error).split())
            raise StartupError(f"{variable}: cannot import {name!r}: {cause}") from None


def check_tool_modules(module_names: list[str]) -> ToolRegistry:
    """Import every tool module and build the registry, or ``StartupError`` naming the cause."""
    variable = f"{ENV_PREFIX}TOOL_MODULES"
    _import_modules(variable, module_names)
    try:
        return ToolRegistry.from_modules(module_names)
    except Exception as error:
        raise StartupError(f"{variable}: {_import_cause(error)}") from None


def check_strategy_modules(module_names: list[str]) -> StrategyRegistry:
    """Import every strategy module and build the registry, or ``StartupError``."""
    variable = f"{ENV_PREFIX}STRATEGY_MODULES"
    _import_modules(variable, module_names)
    try:
        return StrategyRegistry.from_modules(module_names)
    except Exception as error:
        raise StartupError(f"{variable}: {_import_cause(error)}") from None


def exit_with(error: StartupError) -> NoReturn:
    """Print ``error: <cause>`` on stderr and end the process now.

    ``os._exit``: Celery's signal dispatch logs and swallows exceptions, so raising from a
    ``worker_init`` handler would let the worker start anyway.
    """
    line = " ".join(str(error).split())
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os.write(2, f"error: {line}\n".encode(errors="replace"))
    os._exit(1)
