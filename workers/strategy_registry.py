"""The strategies a worker serves: loaded from the modules its operator lists."""

from __future__ import annotations

import importlib
from functools import cache

from orchestrator.settings import get_settings
from orchestrator.strategies import Strategy


class StrategyRegistry:
    """Registered strategies by name.

    Parameters:
        strategies: the strategies this worker serves.
    """

    def __init__(self, strategies: dict[str, Strategy]) -> None:
        self.strategies = strategies

    @classmethod
    def from_modules(cls, module_names: list[str]) -> StrategyRegistry:
        """Every ``Strategy`` defined at the top level of the named modules."""
        found: dict[str, Strategy] = {}
        for module_name in module_names:
            module = importlib.import_module(module_name)
            for value in vars(module).values():
                if not isinstance(value, Strategy):
                    continue
                known = found.get(value.name)
                if known is not None and known is not value:
                    raise ValueError(f"two strategies are named {value.name!r} ({module_name})")
                found[value.name] = value
        return cls(found)

    def get(self, name: str) -> Strategy | None:
        return self.strategies.get(name)

    @property
    def names(self) -> list[str]:
        return sorted(self.strategies)


@cache
def registered_strategies() -> StrategyRegistry:
    """This worker's registry, from ``ORCHESTRATOR_STRATEGY_MODULES`` (checked at start)."""
    return StrategyRegistry.from_modules(get_settings().strategy_module_names)
