"""Collecting what a worker serves (tools, strategies, reducer functions) from the modules its
operator lists: ``ORCHESTRATOR_MODULES`` for every kind of registration, and the older
``ORCHESTRATOR_TOOL_MODULES`` and ``ORCHESTRATOR_STRATEGY_MODULES``, which keep working."""

from __future__ import annotations

import importlib
from typing import Protocol, TypeVar

from orchestrator.config.settings import Settings


class Named(Protocol):
    @property
    def name(self) -> str: ...


NamedT = TypeVar("NamedT", bound=Named)


def served_modules(settings: Settings, own: list[str]) -> list[str]:
    """The modules a registry of one kind is built from: ``ORCHESTRATOR_MODULES``, then
    ``own`` (that kind's own variable), each once."""
    return list(dict.fromkeys([*settings.module_names, *own]))


def collect_named(module_names: list[str], kind: type[NamedT], what: str) -> dict[str, NamedT]:
    """Every ``kind`` defined at the top level of the named modules, by name; two different
    ones under one name are an error (``what`` names them in it: "tools", "strategies")."""
    found: dict[str, NamedT] = {}
    for module_name in module_names:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if not isinstance(value, kind):
                continue
            known = found.get(value.name)
            if known is not None and known is not value:
                raise ValueError(f"two {what} are named {value.name!r} ({module_name})")
            found[value.name] = value
    return found
