"""``orchestrator cache show|reset AGENT_ID``: what the cache learner knows of an agent."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from rich.console import Console
from rich.table import Table

from orchestrator.cache_config import Ttl
from orchestrator.cache_plans import CachePlan
from orchestrator.client import Client
from orchestrator.render import plain
from orchestrator.settings import get_settings


def cache_command(args: argparse.Namespace, client: Client, out: Console) -> int:
    """Run ``cache show`` or ``cache reset``."""
    if args.action == "reset":
        had = client.reset_cache_plan(args.agent_id)
        print(
            f"reset the cache plan of {args.agent_id}"
            if had
            else f"{args.agent_id} had no cache plan"
        )
        return 0
    plan = client.cache_plan(args.agent_id)
    if plan is None:
        Console(stderr=True).print(plain(f"{args.agent_id} has no cache plan yet"))
        return 1
    if args.output == "json":
        print(plan.model_dump_json())
        return 0
    out.print(plain(f"cache plan of {plan.agent_id}: version {plan.version}"))
    out.print(profiles_table(plan))
    return 0


def profiles_table(plan: CachePlan) -> Table:
    """One row per learning key: how much of its prompts stays the same, how often calls
    come back, and what the provider was seen to cache."""
    config = get_settings().cache_governor
    table = Table(
        "surface",
        "model",
        "tools",
        "observations",
        "stable blocks",
        "semi-stable blocks",
        "reuse <=5m / <=1h",
        "next turn <=5m / <=1h",
        "calls/min",
        "min cacheable",
    )
    for profile in plan.profiles.values():
        learned = profile.learned_min_tokens
        table.add_row(
            plain(profile.surface),
            plain(profile.model),
            profile.toolset,
            f"{profile.observations} (of {profile.total_observations})",
            str(profile.stable_prefix(config.stable)),
            str(profile.stable_prefix(config.semi_stable)),
            _pair(profile.reuse_within),
            _pair(profile.continued_within),
            f"{profile.calls_per_minute:.1f}",
            f"> {learned} (learned)" if learned else str(config.model_min_tokens(profile.model)),
        )
    return table


def _pair(shares: Mapping[Ttl, float]) -> str:
    return f"{shares.get('5m', 0.0):.0%} / {shares.get('1h', 0.0):.0%}"
