"""Small builders shared by the tests."""

from __future__ import annotations

from typing import Any

from orchestrator import AgentSpec, ModelConfig


def scripted(name: str, **options: Any) -> AgentSpec:
    """An agent on the offline scripted model with ``options``."""
    return AgentSpec(name=name, model=ModelConfig(provider="scripted", options=options))


def items(count: int) -> list[str]:
    return [f"item-{i}" for i in range(count)]
