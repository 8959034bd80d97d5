"""The strategies a worker serves: loaded from the modules its operator lists."""

from __future__ import annotations

from functools import cache

from orchestrator.config.settings import Settings
from orchestrator.strategies import Strategy
from workers.module_scan import collect_named, served_modules


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
        return cls(collect_named(module_names, Strategy, "strategies"))

    def get(self, name: str) -> Strategy | None:
        return self.strategies.get(name)

    @property
    def names(self) -> list[str]:
        return sorted(self.strategies)


def registered_strategies(settings: Settings) -> StrategyRegistry:
    """This worker's registry, from its ``ORCHESTRATOR_MODULES`` and
    ``ORCHESTRATOR_STRATEGY_MODULES`` (checked at start; built once per list of modules)."""
    return _registry(tuple(served_modules(settings, settings.strategy_module_names)))


@cache
def _registry(module_names: tuple[str, ...]) -> StrategyRegistry:
    return StrategyRegistry.from_modules(list(module_names))
