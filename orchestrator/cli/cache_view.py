"""``orchestrator cache show|reset AGENT_ID``: what the cache learner knows of an agent."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from rich.console import Console

from orchestrator.cli.render import plain
from orchestrator.client import Client
from orchestrator.config.governor import CacheGovernorConfig, Ttl
from orchestrator.plans.cache_plans import CachePlan


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
    for line in plan_lines(plan, client.settings.cache_governor):
        out.print(plain(line))
    return 0


def plan_lines(plan: CachePlan, config: CacheGovernorConfig) -> list[str]:
    """The plan as text, a paragraph per learning key: how much of its prompts stays the
    same, how often calls come back, and what the provider was seen to cache (``config``: the
    governor's numbers, for the documented cache minimums)."""
    lines = [f"cache plan of {plan.agent_id}: version {plan.version}"]
    for profile in plan.profiles.values():
        learned = profile.learned_min_tokens
        minimum = (
            f"above {learned} tokens (learned: a shorter hinted prefix was not cached)"
            if learned
            else f"{config.model_min_tokens(profile.model)} tokens (documented)"
        )
        lines += [
            f"{profile.surface} {profile.model} (tool set {profile.toolset})",
            f"  observations: {profile.observations} in the window, "
            f"{profile.total_observations} in all",
            f"  stable blocks: {profile.stable_prefix(config.stable)} (>= {config.stable}), "
            f"semi-stable: {profile.stable_prefix(config.semi_stable)} "
            f"(>= {config.semi_stable})",
            f"  calls back within 5m / 1h: {_pair(profile.reuse_within)}",
            f"  continued by the next turn within 5m / 1h: {_pair(profile.continued_within)}",
            f"  calls per minute: {profile.calls_per_minute:.1f}",
            f"  minimum cacheable prefix: {minimum}",
        ]
    return lines


def _pair(shares: Mapping[Ttl, float]) -> str:
    return f"{shares.get('5m', 0.0):.0%} / {shares.get('1h', 0.0):.0%}"
