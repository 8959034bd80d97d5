"""The cache governor's parts on hand-computed cases: prompt IR, stability, economics,
planner limits, translators (no Redis, no workers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from learners.prompt_cache import derive_profile, merger, observations_of
from orchestrator.config.governor import CacheGovernorConfig
from orchestrator.models import CallRecord, RunRecord, Usage
from orchestrator.models.cache_records import CacheDecision, PromptBlock
from orchestrator.plans.cache_plans import CachePlan, CacheProfile, Observation, PositionStat
from workers.cache.planner import expected_reads, plan_breakpoints
from workers.cache.prompt_ir import ANTHROPIC, OPENAI_CHAT, previous_call_end, prompt_blocks
from workers.cache.translate import count_breakpoints, openai_hints, with_breakpoints

CONFIG = CacheGovernorConfig()
SONNET = "claude-sonnet-4-5"


def anthropic_body(tool_schema: dict[str, object], system: object) -> dict[str, object]:
    return {
        "model": SONNET,
        "max_tokens": 100,
        "system": system,
        "tools": [{"name": "lookup", "description": "d", "input_schema": tool_schema}],
        "messages": [
            {"role": "user", "content": "question"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "1", "name": "lookup"}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "1"}]},
        ],
    }


def test_blocks_hash_content_not_form() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    reordered = {"required": ["q"], "properties": {"q": {"type": "string"}}, "type": "object"}
    first = prompt_blocks(ANTHROPIC, anthropic_body(schema, "be brief"), 4.0)
    second = prompt_blocks(
        ANTHROPIC,
        anthropic_body(
            reordered,
            [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        ),
        4.0,
    )
    assert [b.hash for b in first] == [b.hash for b in second]
    assert [b.kind for b in first] == [
        "tool",
        "system",
        "user",
        "assistant.tool_use",
        "user.tool_result",
    ]
    assert [b.path for b in first] == [
        ("tools", 0),
        ("system",),
        ("messages", 0, "content"),
        ("messages", 1, "content", 0),
        ("messages", 2, "content", 0),
    ]
    other = prompt_blocks(ANTHROPIC, anthropic_body(schema, "be verbose"), 4.0)
    assert other[1].hash != first[1].hash and other[0].hash == first[0].hash
    # The previous call ended with the first user message: this turn added the rest.
    assert previous_call_end(first) == 2


def test_token_estimate_is_bytes_over_ratio() -> None:
    body = {"messages": [{"role": "user", "content": "x" * 400}]}
    (block,) = prompt_blocks(OPENAI_CHAT, body, 4.0)
    size = len('{"content":"' + "x" * 400 + '","role":"user"}')
    assert block.tokens == -(-size // 4)


def profile(scores: list[tuple[str, float]], **fields: object) -> CacheProfile:
    values: dict[str, object] = {
        "surface": ANTHROPIC,
        "model": SONNET,
        "toolset": "t",
        "observations": 20,
        "total_observations": 20,
        "positions": [PositionStat(hash=h, presence=1.0, share=s) for h, s in scores],
        "reuse_within": {"5m": 1.0, "1h": 1.0},
        "continued_within": {"5m": 0.0, "1h": 0.0},
    }
    values.update(fields)
    return CacheProfile.model_validate(values)


def test_expected_reads_follow_the_seed_formula() -> None:
    learned = profile([("a", 1.0), ("b", 0.8), ("c", 0.3)], observations=10)
    # confidence 10/20; reads = (10 - 1) x min(score x confidence) x reuse share
    reads = expected_reads(["a", "b", "c"], learned, CONFIG, "5m")
    assert reads == [9 * 0.5, 9 * 0.4, 0.0]  # c is below semi-stable: nobody shares it
    assert expected_reads(["a", "x", "b"], learned, CONFIG, "5m") == [4.5, 0.0, 0.0]


def test_plan_puts_the_breakpoint_where_the_gain_is() -> None:
    learned = profile([("a", 1.0), ("b", 1.0), ("c", 0.3)])
    plan = plan_breakpoints(["a", "b", "x"], [1000, 1000, 500], learned, CONFIG)
    # 2,000 tokens x (0.9 x 19 reads - 0.25 write premium) with the 5-minute lifetime
    assert plan is not None and plan.breakpoints == [1] and plan.ttl == "5m"
    assert plan.gain == 2000 * (0.9 * 19 - 0.25)
    sparse = learned.model_copy(update={"reuse_within": {"5m": 0.0, "1h": 1.0}})
    plan = plan_breakpoints(["a", "b", "x"], [1000, 1000, 500], sparse, CONFIG)
    assert plan is not None and plan.ttl == "1h" and plan.gain == 2000 * (0.9 * 19 - 1.0)


def test_no_plan_when_nothing_gains() -> None:
    learned = profile([("a", 1.0), ("b", 1.0)])
    # Too short: below the model's minimum cacheable length.
    assert plan_breakpoints(["a", "b"], [500, 400], learned, CONFIG) is None
    # Calls never come back within a lifetime, and no turn continues another.
    never = learned.model_copy(update={"reuse_within": {"5m": 0.0, "1h": 0.0}})
    assert plan_breakpoints(["a", "b"], [5000, 5000], never, CONFIG) is None
    # Too few observations to plan at all.
    young = learned.model_copy(update={"observations": CONFIG.min_observations - 1})
    assert plan_breakpoints(["a", "b"], [5000, 5000], young, CONFIG) is None
    # A prefix the provider was seen not to cache is not hinted again.
    learned_min = learned.model_copy(update={"learned_min_tokens": 10_000})
    assert plan_breakpoints(["a", "b"], [5000, 5000], learned_min, CONFIG) is None


def test_never_more_than_four_breakpoints_with_the_callers() -> None:
    scores = [(f"h{i}", 1.0 - 0.04 * i) for i in range(12)]
    learned = profile(scores)
    hashes, tokens = [h for h, _ in scores], [2000] * 12
    plan = plan_breakpoints(hashes, tokens, learned, CONFIG)
    assert plan is not None and len(plan.breakpoints) == 4
    plan = plan_breakpoints(hashes, tokens, learned, CONFIG, reserved=3)
    assert plan is not None and len(plan.breakpoints) == 1
    assert plan_breakpoints(hashes, tokens, learned, CONFIG, reserved=4) is None


def test_lifetimes_keep_anthropics_order_around_the_callers_markers() -> None:
    hashes, tokens = ["a", "b", "x"], [1000, 1000, 500]
    often = profile([("a", 1.0), ("b", 1.0)])  # calls within 5 minutes: 5m is cheaper
    plan = plan_breakpoints(hashes, tokens, often, CONFIG, reserved=1)
    assert plan is not None and plan.breakpoints == [1] and plan.ttl == "5m"
    # Before the caller's 1 h marker only a 1 h breakpoint may come; never on its block.
    plan = plan_breakpoints(hashes, tokens, often, CONFIG, reserved=1, caller=[(2, "1h")])
    assert plan is not None and plan.breakpoints == [1] and plan.ttl == "1h"
    plan = plan_breakpoints(hashes, tokens, often, CONFIG, reserved=1, caller=[(1, "5m")])
    assert plan is None
    # After the caller's 5 min marker no 1 h breakpoint: calls an hour apart get none.
    hourly = often.model_copy(update={"reuse_within": {"5m": 0.0, "1h": 1.0}})
    plan = plan_breakpoints(hashes, tokens, hourly, CONFIG, reserved=1)
    assert plan is not None and plan.ttl == "1h"
    assert plan_breakpoints(hashes, tokens, hourly, CONFIG, reserved=1, caller=[(0, "5m")]) is None


def test_lookback_adds_a_breakpoint_on_the_previous_turn() -> None:
    # Nothing shared with other calls; 90% of calls are continued by their next turn.
    learned = profile([], continued_within={"5m": 0.9, "1h": 0.9})
    hashes, tokens = [f"x{i}" for i in range(30)], [300] * 30
    # The previous call ended at block 4: this turn appended 25 blocks, more than the 20
    # the provider looks back, so the last breakpoint alone would not find its entry.
    plan = plan_breakpoints(hashes, tokens, learned, CONFIG, previous_end=4)
    assert plan is not None and plan.breakpoints == [4, 29]
    plan = plan_breakpoints(hashes, tokens, learned, CONFIG, previous_end=15)
    assert plan is not None and plan.breakpoints == [29]


def t(seconds: float) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


def model_call(start: float, end: float, hashes: list[str], **fields: object) -> CallRecord:
    prompt = [PromptBlock(kind="system", hash=h, tokens=100) for h in hashes]
    return CallRecord(
        kind="model",
        name=SONNET,
        started_at=t(start),
        ended_at=t(end),
        surface=ANTHROPIC,
        prompt=prompt,
        **fields,  # type: ignore[arg-type]
    )


def test_learner_sees_stability_gaps_and_continuations() -> None:
    calls = [
        model_call(0, 2, ["s", "u1"]),
        model_call(5, 6, ["s", "u1", "a1", "r1"]),  # continues the first, 3 s after it
        model_call(400, 401, ["s", "u2"]),  # a new conversation, 394 s later
    ]
    record = RunRecord(run_id="r", agent_name="a", agent_id="a", started_at=t(0), calls=calls)
    found = observations_of(record, CONFIG)
    assert [o.continued_after_s for _, o in found] == [3.0, None, None]
    keyed = found[0][0]
    derived = derive_profile(keyed, [o for _, o in found], None, [o for _, o in found], CONFIG)
    assert [(p.hash, p.presence, p.share) for p in derived.positions[:2]] == [
        ("s", 1.0, 1.0),
        ("u1", 1.0, 2 / 3),
    ]
    assert derived.positions[2].presence == 1 / 3
    assert derived.reuse_within == {"5m": 0.5, "1h": 1.0}  # gaps of 5 s and 395 s
    assert derived.continued_within == {"5m": 1 / 3, "1h": 1 / 3}


def test_learner_learns_the_minimum_from_usage() -> None:
    hinted = CacheDecision(breakpoints=[1], ttl="5m")
    calls = [
        model_call(0, 1, ["s", "u"], cache=hinted),  # 200 hinted tokens, nothing cached
        model_call(10, 11, ["s", "v"]),
    ]
    record = RunRecord(run_id="r", agent_name="a", agent_id="a", started_at=t(0), calls=calls)
    change = merger(observations_of(record, CONFIG), CONFIG)
    merged = change(CachePlan.empty("a"), {})
    assert merged is not None
    plan, window = merged
    (learned,) = plan.profiles.values()
    assert learned.learned_min_tokens == 200 and learned.total_observations == 2
    cached = CacheDecision(breakpoints=[1], ttl="5m")
    calls = [model_call(20, 21, ["s", "w"], cache=cached, usage=Usage(cache_read_input_tokens=9))]
    record = RunRecord(run_id="q", agent_name="a", agent_id="a", started_at=t(0), calls=calls)
    again = merger(observations_of(record, CONFIG), CONFIG)(plan, window)
    assert again is not None
    (kept,) = again[0].profiles.values()
    assert kept.learned_min_tokens == 200 and kept.observations == 3


def test_window_keeps_the_newest() -> None:
    small = CacheGovernorConfig(window=3)
    keyed = ("k", ANTHROPIC, SONNET, "t")
    window = {"k": [Observation(at=float(i), hashes=["s"]) for i in range(3)]}
    change = merger([(keyed, Observation(at=10.0, hashes=["s"]))], small)
    merged = change(CachePlan.empty("a"), window)
    assert merged is not None
    assert [o.at for o in merged[1]["k"]] == [1.0, 2.0, 10.0]


def test_anthropic_translator_marks_blocks() -> None:
    body = anthropic_body({"type": "object"}, "be brief")
    blocks = prompt_blocks(ANTHROPIC, body, 4.0)
    marked = with_breakpoints(body, blocks, [1, 4], "1h")
    hint = {"type": "ephemeral", "ttl": "1h"}
    assert marked["system"] == [{"type": "text", "text": "be brief", "cache_control": hint}]
    assert marked["messages"][2]["content"][0]["cache_control"] == hint  # type: ignore[index]
    assert body["system"] == "be brief"  # the original is left as it was
    assert count_breakpoints(marked) == 2 and count_breakpoints(body) == 0
    # The hints change no block's hash: the learner sees the same prompt.
    assert [b.hash for b in prompt_blocks(ANTHROPIC, marked, 4.0)] == [b.hash for b in blocks]


def test_openai_key_is_stable_and_spread_above_the_rate() -> None:
    body = {"messages": [{"role": "system", "content": "s" * 8000}]}
    blocks = prompt_blocks(OPENAI_CHAT, body, 4.0)
    learned = profile([(blocks[0].hash, 1.0)], surface=OPENAI_CHAT, model="gpt-4o")
    first = openai_hints(blocks, learned, CONFIG, "agent|key", "run1/0")
    assert first is not None and first == openai_hints(blocks, learned, CONFIG, "agent|key", "x")
    assert first[1] is None  # gpt-4o does not take 24 h retention
    busy = learned.model_copy(update={"calls_per_minute": 100.0, "model": "gpt-5"})
    keys = {openai_hints(blocks, busy, CONFIG, "agent|key", f"run/{i}") for i in range(50)}
    assert len(keys) == 7  # ceil(100 / 15) keys
    sparse = learned.model_copy(update={"long_gaps": 0.5, "model": "gpt-5"})
    hints = openai_hints(blocks, sparse, CONFIG, "agent|key", "run")
    assert hints is not None and hints[1] == "24h"
    short = prompt_blocks(OPENAI_CHAT, {"messages": [{"role": "system", "content": "s"}]}, 4.0)
    assert openai_hints(short, profile([(short[0].hash, 1.0)]), CONFIG, "a", "r") is None
