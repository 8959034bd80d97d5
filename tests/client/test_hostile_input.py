"""Hostile input is refused at submit: values the stored request could not hold, or that the
workers could not parse back, raise ``InvalidRunError`` naming the field, and nothing is
dispatched (issue 9, point 6)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from orchestrator import Client, InvalidRunError
from orchestrator.models import TERMINAL_STATES
from orchestrator.models.input_limits import (
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_REQUEST_BYTES,
    MAX_STRING_CHARS,
    check_request_value,
)
from tests.helpers import items, scripted, stored_runs

SURROGATE = "\ud800"


def nested(depth: int, leaf: Any = 1) -> Any:
    """``{"a": {"a": ... leaf}}`` with ``depth`` dicts."""
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def refused(client: Client, call: Any, **overrides: Any) -> str:
    """Submit with ``overrides``; assert it is refused and nothing was written; the message."""
    before = stored_runs(client.redis)
    with pytest.raises(InvalidRunError) as error:
        call(client, **overrides)
    assert not stored_runs(client.redis) - before
    return str(error.value)


def map_reduce(client: Client, **overrides: Any) -> Any:
    arguments: dict[str, Any] = {
        "task": "Task",
        "items": items(2),
        "mapper": scripted("mapper"),
        "reducer": scripted("reducer"),
    }
    arguments.update(overrides)
    return client.map_reduce(**arguments)


def run_agent(client: Client, **overrides: Any) -> Any:
    arguments: dict[str, Any] = {"spec": scripted("agent"), "prompt": "Hello"}
    arguments.update(overrides)
    return client.run_agent(**arguments)


def branches(client: Client, **overrides: Any) -> Any:
    arguments: dict[str, Any] = {"configs": [scripted("a"), scripted("b")], "prompt": "Hello"}
    arguments.update(overrides)
    return client.parallel_branches(**arguments)


@pytest.mark.parametrize(
    ("call", "overrides", "message"),
    [
        (map_reduce, {"deadline_s": math.inf}, "deadline_s: inf is not a finite number"),
        (run_agent, {"deadline_s": math.inf}, "deadline_s: inf is not a finite number"),
        (map_reduce, {"budget": {"max_cost_usd": math.inf}}, "budget.max_cost_usd: inf"),
        (
            map_reduce,
            {"mapper": scripted("m", answer=math.nan)},
            "mapper.model.options.answer: nan is not a finite number",
        ),
        (
            map_reduce,
            {"items": ["fine", "fine", "fine", f"bad{SURROGATE}"]},
            "items[3]: not valid Unicode (lone surrogate)",
        ),
        (map_reduce, {"task": f"Task {SURROGATE}"}, "task: not valid Unicode (lone surrogate)"),
        (run_agent, {"prompt": SURROGATE}, "prompt: not valid Unicode (lone surrogate)"),
        (branches, {"prompt": SURROGATE}, "prompt: not valid Unicode (lone surrogate)"),
        (
            run_agent,
            {"prompt": None, "context": [{"role": "user", "content": f"x{SURROGATE}"}]},
            "context[0].content: not valid Unicode (lone surrogate)",
        ),
        (
            branches,
            {"configs": [scripted("a"), {"name": "b", "instructions": SURROGATE}]},
            "configs[1].instructions: not valid Unicode",
        ),
        (
            map_reduce,
            {"reducer": scripted("r", **{SURROGATE: 1})},
            "reducer.model.options['\\ud800']: not valid Unicode",
        ),
        (
            map_reduce,
            {"mapper": scripted("m", deep=nested(300))},
            f"mapper.model.options.deep{'.a' * (MAX_DEPTH - 4)}: nested deeper than "
            f"{MAX_DEPTH} levels",
        ),
        (
            run_agent,
            {"spec": {"name": "a", "model": {"options": {"deep": nested(40)}}}},
            f"nested deeper than {MAX_DEPTH} levels",
        ),
        (
            map_reduce,
            {"task": "x" * (MAX_STRING_CHARS + 1)},
            f"task: {MAX_STRING_CHARS + 1:,} characters, above the limit",
        ),
        (
            map_reduce,
            {"items": ["a", "b" * (MAX_STRING_CHARS + 1)]},
            "items[1]: 1,000,001 characters",
        ),
        (
            map_reduce,
            {"mapper": scripted("m", blob=["x" * 1000] * (MAX_REQUEST_BYTES // 1000))},
            f"larger than {MAX_REQUEST_BYTES // (1024 * 1024)} MB as JSON",
        ),
    ],
)
def test_hostile_input_is_refused_before_dispatch(
    client: Client, call: Any, overrides: dict[str, Any], message: str
) -> None:
    assert message in refused(client, call, **overrides)


def test_too_many_items_are_refused(client: Client) -> None:
    many = [""] * (MAX_ITEMS + 1)
    assert f"items: {MAX_ITEMS + 1:,} items, above the limit" in refused(
        client, map_reduce, items=many
    )


def test_depth_up_to_the_limit_is_accepted(client: Client) -> None:
    # The request is level 1 and mapper.model.options level 4: a value in it may add 28.
    handle = map_reduce(client, mapper=scripted("m", deep=nested(MAX_DEPTH - 4)))
    assert handle.wait(timeout=60).state == "succeeded"
    with pytest.raises(InvalidRunError, match="nested deeper"):
        map_reduce(client, mapper=scripted("m", deep=nested(MAX_DEPTH - 3)))


def test_cycles_and_huge_nesting_are_refused_without_recursion() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(InvalidRunError, match="nested deeper"):
        check_request_value(loop, "options")
    with pytest.raises(InvalidRunError, match="nested deeper"):
        check_request_value(nested(100_000), "options")


# What the property test generates: values with non-finite floats, lone surrogates and deep
# nesting among ordinary ones (under the option "x", which the scripted model does not read).
texts = st.text(
    alphabet=st.characters(exclude_categories=()) | st.sampled_from([SURROGATE, "\udfff"]),
    max_size=12,
)
leaves = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | texts
trees = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
options = st.builds(
    lambda tree, depth: {"x": nested(depth, tree)},
    trees,
    st.sampled_from([0, 2, MAX_DEPTH - 6, MAX_DEPTH, 60]),
)


def hostile(value: Any, depth: int = 0) -> bool:
    """An independent oracle: whether ``value`` (at ``depth`` containers) must be refused."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return depth + 1 > MAX_DEPTH or any(
            hostile(k, depth) or hostile(v, depth + 1) for k, v in value.items()
        )
    if isinstance(value, list):
        return depth + 1 > MAX_DEPTH or any(hostile(v, depth + 1) for v in value)
    return False


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    task=st.just("Summarise") | texts,
    item_list=st.lists(texts, min_size=1, max_size=3),
    mapper_options=options,
    deadline_s=st.sampled_from([5.0, math.inf, math.nan, 1e300]),
)
def test_any_request_is_refused_at_submit_or_runs_to_an_end(
    client: Client,
    task: str,
    item_list: list[str],
    mapper_options: dict[str, Any],
    deadline_s: float,
) -> None:
    mapper = {"name": "mapper", "model": {"provider": "scripted", "options": mapper_options}}
    # The stored request: map_reduce's fields, with mapper.model.options at level 4.
    request = {"task": task, "deadline_s": deadline_s, "mapper": mapper}
    must_refuse = hostile(request) or hostile(item_list)
    before = stored_runs(client.redis)
    try:
        handle = map_reduce(
            client, task=task, items=item_list, mapper=mapper, deadline_s=deadline_s
        )
    except InvalidRunError:
        event("refused at submit" + (" (hostile)" if must_refuse else ""))
        assert not stored_runs(client.redis) - before
        return
    assert not must_refuse, "a hostile request was accepted"
    state = handle.wait(timeout=60).state
    event(f"ran: {state}")
    assert state in TERMINAL_STATES
