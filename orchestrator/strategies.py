"""Evaluation strategies that workers serve: a client names one, it never sends code.

A strategy is a function ``(prompt, outcomes) -> config index`` that picks the branch a
parallel-branches run selects. Besides the built-ins, functions decorated with ``@strategy``
in the modules a worker lists in ``ORCHESTRATOR_STRATEGY_MODULES`` are registered under their
name; workers publish the names they serve, and a run naming any other strategy is refused at
submit. Nothing a client submits is ever imported.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import overload

from orchestrator.models.results import BranchOutcome

StrategyFunction = Callable[[str | None, list[BranchOutcome]], int]

BUILTIN_STRATEGIES = ("transparent", "pick_first", "token_efficient", "elaborate", "llm_judge")
STRATEGY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
"""What a registered strategy may be called: a plain name, never a path."""


@dataclass(frozen=True)
class Strategy:
    """A registered strategy; calling it calls the function."""

    name: str
    function: StrategyFunction

    def __call__(self, prompt: str | None, outcomes: list[BranchOutcome]) -> int:
        return self.function(prompt, outcomes)


@overload
def strategy(function: StrategyFunction, *, name: str | None = None) -> Strategy: ...


@overload
def strategy(
    function: None = None, *, name: str | None = None
) -> Callable[[StrategyFunction], Strategy]: ...


def strategy(
    function: StrategyFunction | None = None, *, name: str | None = None
) -> Strategy | Callable[[StrategyFunction], Strategy]:
    """Register ``function`` as a strategy named ``name`` (default: the function's name).

    Used bare (``@strategy``) or with a name (``@strategy(name="longest")``); the module must
    be listed in the workers' ``ORCHESTRATOR_STRATEGY_MODULES``.
    """

    def register(target: StrategyFunction) -> Strategy:
        chosen = name or target.__name__
        if not STRATEGY_NAME.match(chosen):
            raise ValueError(f"strategy name {chosen!r} must match {STRATEGY_NAME.pattern}")
        if chosen in BUILTIN_STRATEGIES:
            raise ValueError(f"strategy name {chosen!r} is a built-in")
        return Strategy(chosen, target)

    return register(function) if function is not None else register
