"""The prompts of a tree reduce: every one fits the reducer's input budget, the chunks keep
every entry in order, and each level is smaller than the one before (pure logic)."""

from __future__ import annotations

import random

import pytest

from orchestrator import AgentSpec, ModelConfig
from orchestrator.tokens import estimate_tokens
from workers.kinds.reduce_prompts import CUT_MARK, NoRoom, TreeFrame, fits

INSTRUCTIONS = "Merge the summaries into one report."


def reducer(window: int, instructions: str = INSTRUCTIONS) -> AgentSpec:
    return AgentSpec(
        name="reducer", instructions=instructions, model=ModelConfig(context_window=window)
    )


def input_tokens(spec: AgentSpec, prompt: str) -> int:
    """What the call's input counts: the instructions and the prompt, joined by a newline."""
    return estimate_tokens(f"{spec.instructions}\n{prompt}")


def test_every_chunk_s_prompt_fits_and_the_chunks_keep_every_entry_in_order() -> None:
    spec = reducer(2000)
    pick = random.Random(7)
    entries = [f"- [mapper_{i}] " + "x" * pick.randrange(0, 900) for i in range(400)]
    frame = TreeFrame.for_run(spec, "Digest", 400)
    chunks = frame.chunks(entries)
    assert len(chunks) > 1
    assert [line for chunk in chunks for line in chunk] == entries  # none needed a cut
    for part, chunk in enumerate(chunks, 1):
        prompt = frame.prompt(1, part, len(chunks), chunk)
        assert fits(spec, prompt)
        assert input_tokens(spec, prompt) <= 1600


def test_an_entry_too_long_for_the_window_on_its_own_is_cut_to_fit() -> None:
    spec = reducer(1000)
    frame = TreeFrame.for_run(spec, "Digest", 3)
    (chunk,) = frame.chunks(["- [mapper_0] short", "- [mapper_1] " + "y" * 100_000])
    assert chunk[0] == "- [mapper_0] short"
    assert chunk[1].startswith("- [mapper_1] yyy") and chunk[1].endswith(CUT_MARK)
    assert input_tokens(spec, frame.prompt(1, 1, 1, chunk)) <= 800


def test_every_chunk_but_the_last_holds_two_entries_so_each_level_is_smaller() -> None:
    spec = reducer(600)
    frame = TreeFrame.for_run(spec, "Digest", 9)
    entries = [f"- [reducer.1.{i}] " + "z" * 50_000 for i in range(9)]
    chunks = frame.chunks(entries)
    assert [len(chunk) for chunk in chunks] == [2, 2, 2, 2, 1]
    for part, chunk in enumerate(chunks, 1):
        assert input_tokens(spec, frame.prompt(2, part, len(chunks), chunk)) <= 480


def test_a_task_too_long_for_the_window_is_cut_in_every_prompt() -> None:
    spec = reducer(1000)
    frame = TreeFrame.for_run(spec, "T" * 50_000, 2)
    (chunk,) = frame.chunks(["- [mapper_0] a", "- [mapper_1] b"])
    prompt = frame.prompt(1, 1, 1, chunk)
    assert f"T{CUT_MARK}\n" in prompt
    assert input_tokens(spec, prompt) <= 800


def test_no_entry_is_an_empty_chunk() -> None:
    frame = TreeFrame.for_run(reducer(1000), "Digest", 4)
    assert frame.chunks([]) == [[]]


def test_instructions_that_fill_the_window_leave_no_room() -> None:
    with pytest.raises(NoRoom, match="leaves no room"):
        TreeFrame.for_run(reducer(256, instructions="i" * 900), "Digest", 10)
