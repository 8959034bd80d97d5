"""The planner: where a request's cache breakpoints pay, by the economics of its profile.

For a block boundary ``b`` of the request, the expected reads of the prefix up to ``b`` are
the larger of

* reads by other calls: ``(observations - 1) x min over the prefix of (score x confidence)``,
  times the share of gaps between calls within the entry's lifetime. Only while the request's
  blocks are the dominant ones of their positions, each at least semi-stable: past the first
  block that is not, no other call shares the prefix;
* reads by the next call of the same conversation (an agent loop's next turn sends the whole
  prompt again): the share of calls continued within the lifetime, times confidence.

A breakpoint at ``b`` after one at ``a`` caches the tokens between them, which are written
once and read as often as ``b``'s prefix: its net gain is
``tokens x ((1 - read_multiplier) x reads(b) - (write_multiplier - 1))``. A dynamic programme
over candidate boundaries (prefixes at least the model's minimum cacheable length) picks at
most the free breakpoints with the highest total gain, for each lifetime, and the better
lifetime wins. The provider looks back at most ``lookback`` blocks from a breakpoint for an
entry: when this turn appended that many blocks or more since the previous call's last block,
a breakpoint after it must have one on it (which reads the previous call's entry). No plan
when nothing gains.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from orchestrator.config.governor import CacheGovernorConfig, Ttl
from orchestrator.plans.cache_plans import CacheProfile


@dataclass(frozen=True)
class BreakpointPlan:
    """Breakpoints (block indices, ascending), their lifetime, and the expected net gain in
    input-token prices."""

    breakpoints: list[int]
    ttl: Ttl
    gain: float


def confidence(profile: CacheProfile, config: CacheGovernorConfig) -> float:
    """Full after ``full_confidence`` observations, linear before."""
    return min(1.0, profile.observations / config.full_confidence)


def expected_reads(
    hashes: list[str], profile: CacheProfile, config: CacheGovernorConfig, ttl: Ttl
) -> list[float]:
    """The expected reads of each prefix of a request whose blocks hash to ``hashes``."""
    sure = confidence(profile, config)
    by_others = (profile.observations - 1) * profile.reuse_within.get(ttl, 0.0)
    by_next_turn = profile.continued_within.get(ttl, 0.0) * sure
    reads: list[float] = []
    weakest = 1.0  # min over the prefix of score x confidence
    shared = True
    for position, block_hash in enumerate(hashes):
        if shared and position < len(profile.positions):
            stat = profile.positions[position]
            shared = stat.hash == block_hash and stat.score >= config.semi_stable
            weakest = min(weakest, stat.score * sure)
        else:
            shared = False
        reads.append(max(by_others * weakest if shared else 0.0, by_next_turn))
    return reads


def min_cacheable(profile: CacheProfile, config: CacheGovernorConfig) -> int:
    """The shortest prefix worth a breakpoint: the model's documented minimum, or above the
    longest hinted prefix the provider was seen not to cache."""
    return max(config.model_min_tokens(profile.model), profile.learned_min_tokens + 1)


def plan_breakpoints(
    hashes: list[str],
    tokens: list[int],
    profile: CacheProfile,
    config: CacheGovernorConfig,
    *,
    previous_end: int | None = None,
    reserved: int = 0,
    caller: Sequence[tuple[int, str]] = (),
    unmarkable: Collection[int] = (),
) -> BreakpointPlan | None:
    """The most profitable breakpoints for a request (its blocks' ``hashes`` and ``tokens``),
    or None when none gains or the profile has too few observations. ``previous_end`` is the
    last block of the previous call of the conversation (None: none); ``reserved`` counts
    breakpoints the request already carries; ``caller`` lists the caller's own markers (block
    index, lifetime). No breakpoint goes on a block the caller marked, nor on an
    ``unmarkable`` one (an output schema: no hint can go there), and lifetimes stay in the
    order Anthropic accepts with the caller's: never longer than a marker before, nor shorter
    than one after."""
    slots = config.max_breakpoints - reserved
    if profile.observations < config.min_observations or slots <= 0 or not hashes:
        return None
    prefix: list[int] = []
    total = 0
    for count in tokens:
        total += count
        prefix.append(total)
    shortest = min_cacheable(profile, config)
    best: BreakpointPlan | None = None
    for ttl in config.ttl_s:
        reads = expected_reads(hashes, profile, config, ttl)
        # Reads never grow along the prompt, so within a stretch of equal reads the last
        # boundary is at least as good as any other: only stretch ends (and the previous
        # call's end) are candidates, which keeps the programme small on long prompts.
        candidates = [
            index
            for index, size in enumerate(prefix)
            if size >= shortest
            and index not in unmarkable
            and (
                index == len(prefix) - 1
                or reads[index + 1] != reads[index]
                or index == previous_end
            )
            and _fits(index, ttl, caller, config)
        ]
        plan = _best_placement(prefix, reads, candidates, slots, ttl, config, previous_end)
        if plan is not None and (best is None or plan.gain > best.gain):
            best = plan
    return best


def _fits(
    index: int, ttl: Ttl, caller: Sequence[tuple[int, str]], config: CacheGovernorConfig
) -> bool:
    """Whether a ``ttl`` breakpoint on block ``index`` keeps the caller's markers as they are:
    not on a marked block, no longer than a marker before it, no shorter than one after."""
    lifetimes: dict[str, float] = {str(name): seconds for name, seconds in config.ttl_s.items()}
    life = lifetimes[ttl]
    for at, theirs in caller:
        their_life = lifetimes.get(theirs)
        if at == index:
            return False
        if their_life is None:
            continue  # a lifetime the provider does not know: the request fails without us too
        if (at < index and their_life < life) or (at > index and their_life > life):
            return False
    return True


def _best_placement(
    prefix: list[int],
    reads: list[float],
    candidates: list[int],
    slots: int,
    ttl: Ttl,
    config: CacheGovernorConfig,
    previous_end: int | None,
) -> BreakpointPlan | None:
    saved = 1.0 - config.read_multiplier
    premium = config.write_multipliers[ttl] - 1.0
    # A transition from ``a`` to ``c`` that jumps over the previous call's end by a lookback
    # or more would leave the previous entry out of reach.
    must_stop = previous_end if previous_end is not None and previous_end in candidates else None

    def gain(after: int, at: int) -> float:
        start = prefix[after] if after >= 0 else 0
        return (prefix[at] - start) * (saved * reads[at] - premium)

    def reachable(after: int, at: int) -> bool:
        if must_stop is None:
            return True
        return not (after < must_stop < at and at - must_stop >= config.lookback)

    # value[k][c]: the best gain of k + 1 breakpoints, the last at candidate c.
    value: list[dict[int, float]] = [{} for _ in range(slots)]
    parent: list[dict[int, int]] = [{} for _ in range(slots)]
    for at in candidates:
        if reachable(-1, at):
            value[0][at] = gain(-1, at)
            parent[0][at] = -1
    for k in range(1, slots):
        for at in candidates:
            options = [
                (value[k - 1][after] + gain(after, at), after)
                for after in value[k - 1]
                if after < at and reachable(after, at)
            ]
            if options:
                value[k][at], parent[k][at] = max(options)
    ends = [(score, k, at) for k in range(slots) for at, score in value[k].items()]
    if not ends:
        return None
    score, k, at = max(ends)
    if score <= 0:
        return None
    chosen = []
    while at >= 0:
        chosen.append(at)
        at = parent[k][at]
        k -= 1
    return BreakpointPlan(breakpoints=sorted(chosen), ttl=ttl, gain=score)
