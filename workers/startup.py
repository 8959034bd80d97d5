"""What a worker checks before it consumes anything: it starts whole or not at all.

The settings are checked, and tracing set up, when ``workers.app`` is imported (the app's
configuration needs them; a forked pool child inherits both), the modules it serves (tools,
strategies, reducer functions) when the worker initialises (``worker_init``, before its pool,
consumer and watchdog exist). A failure is one line on stderr, ``error: <cause>``, and a
non-zero exit.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

from orchestrator import tracing
from orchestrator.config.settings import ENV_PREFIX, InvalidSettingsError, Settings, load_settings
from orchestrator.tracing import TracingConfigError
from workers.agent.functions import AgentFunctions
from workers.kinds.reducer_functions import registered_reducers
from workers.kinds.strategy_registry import StrategyRegistry
from workers.module_scan import served_modules
from workers.tools.registry import ToolRegistry


class StartupError(Exception):
    """A worker cannot start; the message is the cause, on one line."""


def check_settings() -> Settings:
    """The process's settings, or ``StartupError`` naming what is wrong with them (never a
    value: a URL may hold a password)."""
    try:
        return load_settings()
    except InvalidSettingsError as error:
        raise StartupError(str(error)) from None


def check_tracing() -> bool:
    """Set tracing up as the ``OTEL_*`` variables say (True when on), or ``StartupError``
    naming the variable that asks for what this installation cannot do."""
    try:
        return tracing.configure()
    except TracingConfigError as error:
        raise StartupError(str(error)) from None


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


def check_modules(settings: Settings) -> None:
    """Import every module the worker serves (``ORCHESTRATOR_MODULES``, then
    ``ORCHESTRATOR_TOOL_MODULES`` and ``ORCHESTRATOR_STRATEGY_MODULES``) and build each
    registry from them, or ``StartupError`` naming the variable and the cause."""
    shared = f"{ENV_PREFIX}MODULES"
    _import_modules(shared, settings.module_names)
    check_tool_modules(settings)
    check_strategy_modules(settings)
    _registry(shared, lambda: registered_reducers(settings))
    _registry(shared, lambda: AgentFunctions.from_modules(settings.module_names))


def check_tool_modules(settings: Settings) -> ToolRegistry:
    """Import every tool module and build the registry, or ``StartupError`` naming the cause."""
    variable = f"{ENV_PREFIX}TOOL_MODULES"
    _import_modules(variable, settings.tool_module_names)
    modules = served_modules(settings, settings.tool_module_names)
    return _registry(variable, lambda: ToolRegistry.from_modules(modules))


def check_strategy_modules(settings: Settings) -> StrategyRegistry:
    """Import every strategy module and build the registry, or ``StartupError``."""
    variable = f"{ENV_PREFIX}STRATEGY_MODULES"
    _import_modules(variable, settings.strategy_module_names)
    modules = served_modules(settings, settings.strategy_module_names)
    return _registry(variable, lambda: StrategyRegistry.from_modules(modules))


RegistryT = TypeVar("RegistryT")


def _registry(variable: str, build: Callable[[], RegistryT]) -> RegistryT:
    """``build()``, or ``StartupError`` naming ``variable`` and the cause (two registrations
    of one kind under one name)."""
    try:
        return build()
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
