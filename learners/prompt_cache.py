"""The cache learner: which parts of an agent's prompts stay the same from call to call.

Each model call of a record that carries its prompt's blocks becomes an observation of its
learning key (surface, model, tool set): the blocks' hashes, when it ran, whether the next
call of its conversation sent its whole prompt again (and after how long), and what its
cache hints and usage showed. A profile is derived from the newest ``window`` observations
(``orchestrator.plans.cache_plans``); the learner never sees prompt content.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from orchestrator.config.governor import CacheGovernorConfig
from orchestrator.models import CallRecord, RunRecord, utcnow
from orchestrator.models.cache_records import toolset_hash
from orchestrator.plans.cache_plans import (
    CachePlan,
    CacheProfile,
    Observation,
    PositionStat,
    learning_key,
)
from orchestrator.plans.cache_store import CachePlanStore, Window

EXPLICIT_BREAKPOINT_SURFACES = frozenset({"anthropic.messages"})
"""Surfaces where a hinted prefix that shows no cache tokens was too short to cache (OpenAI
reports none on a first call whatever its length)."""

Keyed = tuple[str, str, str, str]
"""A learning key with its surface, model and tool set."""


def observations_of(
    record: RunRecord, config: CacheGovernorConfig
) -> list[tuple[Keyed, Observation]]:
    """The record's model calls that carry their prompt's blocks, as observations."""
    calls = [
        call
        for call in record.calls
        if call.kind == "model" and call.prompt and call.surface and call.status == "ok"
    ]
    found: list[tuple[Keyed, Observation]] = []
    for index, call in enumerate(calls):
        assert call.prompt is not None and call.surface is not None
        following = calls[index + 1] if index + 1 < len(calls) else None
        toolset = toolset_hash(call.prompt)
        keyed = (learning_key(call.surface, call.name, toolset), call.surface, call.name, toolset)
        observation = Observation(
            at=call.started_at.timestamp(),
            hashes=[block.hash for block in call.prompt[: config.positions]],
            continued_after_s=_continued_after(call, following),
            hinted_prefix_tokens=_hinted_prefix_tokens(call),
            cache_tokens=(
                call.usage.cache_creation_input_tokens
                + call.usage.cache_read_input_tokens
                + call.usage.cached_tokens
            ),
            call=hashlib.sha256(f"{record.run_id}/{index}".encode()).hexdigest()[:16],
        )
        found.append((keyed, observation))
    return found


def _continued_after(call: CallRecord, following: CallRecord | None) -> float | None:
    """Seconds until ``following``, when it sent ``call``'s whole prompt again."""
    if following is None or call.ended_at is None or not following.prompt or not call.prompt:
        return None
    mine = [block.hash for block in call.prompt]
    theirs = [block.hash for block in following.prompt[: len(mine)]]
    if theirs != mine:
        return None
    return max(0.0, (following.started_at - call.ended_at).total_seconds())


def _hinted_prefix_tokens(call: CallRecord) -> int:
    if call.cache is None or call.cache.refused or not call.cache.breakpoints or not call.prompt:
        return 0
    last = max(call.cache.breakpoints)
    return sum(block.tokens for block in call.prompt[: last + 1])


def derive_profile(
    keyed: Keyed,
    observations: list[Observation],
    previous: CacheProfile | None,
    added: Iterable[Observation],
    config: CacheGovernorConfig,
) -> CacheProfile:
    """The profile of ``observations`` (the window, oldest first), after ``added`` joined it."""
    _, surface, model, toolset = keyed
    added = list(added)
    count = len(observations)
    positions: list[PositionStat] = []
    for position in range(config.positions):
        present = [o.hashes[position] for o in observations if len(o.hashes) > position]
        if not present:
            break
        dominant, times = Counter(present).most_common(1)[0]
        positions.append(
            PositionStat(hash=dominant, presence=len(present) / count, share=times / len(present))
        )
    starts = sorted(o.at for o in observations)
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    learned_min = previous.learned_min_tokens if previous else 0
    if surface in EXPLICIT_BREAKPOINT_SURFACES:
        for observation in added:
            if observation.hinted_prefix_tokens and not observation.cache_tokens:
                learned_min = max(learned_min, observation.hinted_prefix_tokens)
    span = starts[-1] - starts[0] if starts else 0.0
    return CacheProfile(
        surface=surface,
        model=model,
        toolset=toolset,
        observations=count,
        total_observations=(previous.total_observations if previous else 0) + len(added),
        positions=positions,
        reuse_within={ttl: _within(gaps, limit) for ttl, limit in config.ttl_s.items()},
        continued_within={
            ttl: _within([o.continued_after_s for o in observations], limit)
            for ttl, limit in config.ttl_s.items()
        },
        long_gaps=1.0 - _within(gaps, config.in_memory_retention_s) if gaps else 0.0,
        calls_per_minute=(count - 1) * 60.0 / max(span, 1.0),
        learned_min_tokens=learned_min,
        updated_at=utcnow(),
    )


def _within(gaps: Sequence[float | None], limit: float) -> float:
    """The share of ``gaps`` that are known and at most ``limit`` (0 for no gaps)."""
    if not gaps:
        return 0.0
    return sum(1 for gap in gaps if gap is not None and gap <= limit) / len(gaps)


def merger(
    new: list[tuple[Keyed, Observation]], config: CacheGovernorConfig
) -> Callable[[CachePlan, Window], tuple[CachePlan, Window] | None]:
    """The change that adds ``new`` to an agent's window and re-derives its profiles."""

    def merge(plan: CachePlan, window: Window) -> tuple[CachePlan, Window] | None:
        if not new:
            return None
        by_key: dict[str, tuple[Keyed, list[Observation]]] = {}
        for keyed, observation in new:
            by_key.setdefault(keyed[0], (keyed, []))[1].append(observation)
        merged = plan.model_copy(deep=True)
        window = dict(window)
        changed = False
        for key, (keyed, observed) in by_key.items():
            # A batch learned again (its learner killed before it counted it) brings what the
            # window already holds: each observation joins it once.
            known = {o.call for o in window.get(key, []) if o.call}
            added = [o for o in observed if not o.call or o.call not in known]
            if not added:
                continue
            changed = True
            kept = sorted([*window.get(key, []), *added], key=lambda o: o.at)
            window[key] = kept[-config.window :]
            merged.profiles[key] = derive_profile(
                keyed, window[key], plan.profiles.get(key), added, config
            )
        if not changed:
            return None
        # Keep the most recently updated profiles: an agent whose tool set or model keeps
        # changing must not grow its plan without bound.
        if len(merged.profiles) > config.max_profiles:
            newest = sorted(
                merged.profiles, key=lambda k: merged.profiles[k].updated_at or utcnow()
            )[-config.max_profiles :]
            merged.profiles = {key: merged.profiles[key] for key in sorted(newest)}
            window = {key: window[key] for key in newest if key in window}
        return merged, window

    return merge


def learn_prompts(
    observed: dict[str, list[tuple[Keyed, Observation]]],
    store: CachePlanStore,
    config: CacheGovernorConfig,
) -> list[str]:
    """Merge each agent's new observations (``observations_of`` its records) into its cache
    plan; the agents whose plans changed."""
    changed = []
    for agent_id, new in observed.items():
        if new and store.update(agent_id, merger(new, config)) is not None:
            changed.append(agent_id)
    return changed
