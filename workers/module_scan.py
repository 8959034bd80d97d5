"""Collecting what a worker serves (tools, strategies) from the modules its operator lists."""

from __future__ import annotations

import importlib
from typing import Protocol, TypeVar


class Named(Protocol):
    @property
    def name(self) -> str: ...


NamedT = TypeVar("NamedT", bound=Named)


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
