"""The order of a run's keys is declared once (``keys.RUN_PARTS``): the Python names of the keys
and the Lua names the run scripts use are both made from it, and the scripts name no key that
it does not declare. Checked on the Lua text and, for the names the scripts see, on a real
Redis."""

from __future__ import annotations

import re
from importlib.resources import files

import redis

from orchestrator.local import LocalRedis
from orchestrator.state.keys import (
    GROUP_PARTS,
    RUN_PARTS,
    SHARED_RUN_PARTS,
    GroupKeys,
    KeyPart,
    RunKeys,
    new_run_id,
)
from orchestrator.state.scripts import key_names, lua_key_name

LUA = files("orchestrator.state.lua")
KEY_NAME = re.compile(r"\bK_[A-Z_]+\b")


def lua_sources() -> dict[str, str]:
    return {entry.name: entry.read_text() for entry in LUA.iterdir() if entry.name.endswith(".lua")}


def test_every_key_name_a_script_uses_is_generated_from_the_run_parts() -> None:
    generated = set(KEY_NAME.findall(key_names()))
    assert generated == {lua_key_name(part) for part in RUN_PARTS}
    for name, source in lua_sources().items():
        unknown = set(KEY_NAME.findall(source)) - generated
        assert not unknown, f"{name} names keys that RUN_PARTS does not declare: {unknown}"
        # No script writes the order again: a run's keys are named by the generated prelude.
        assert not re.search(r"\bK_[A-Z_]+\s*(,\s*K_[A-Z_]+\s*)*=[^=]", source), name
        assert not re.search(r"\b(RUN_KEY_COUNT|RUN_KEYS|GROUP_PARTS)\s*=[^=]", source), name


def test_every_part_has_its_python_name() -> None:
    for keys, parts in ((RunKeys, RUN_PARTS), (GroupKeys, GROUP_PARTS)):
        named = {attr: v.index for attr, v in vars(keys).items() if isinstance(v, KeyPart)}
        assert sorted(named.values()) == list(range(len(parts)))
        for attr, index in named.items():
            assert parts[index] in (attr, "") and (parts[index] or "run") == attr


def test_the_names_a_run_script_sees_are_the_keys_python_names(redis_server: LocalRedis) -> None:
    client = redis.Redis.from_url(redis_server.url)
    keys, group = RunKeys(new_run_id("g")), GroupKeys("g")
    names = [lua_key_name(part) for part in RUN_PARTS]
    script = key_names() + f"return {{{', '.join(names)}}}"
    seen = client.eval(script, len(keys.all), *keys.all)
    assert [name.decode() for name in seen] == [getattr(keys, part or "run") for part in RUN_PARTS]

    # A grouped script finds the group's keys after the run's, at the generated offsets, and
    # this run's shared keys under the names its group's other runs' keys get.
    offsets = ", ".join(f"KEYS[RUN_KEY_COUNT + 1 + GROUP_PARTS.{part}]" for part in GROUP_PARTS)
    shared = ", ".join(f"SHARED_RUN_KEYS[SHARED_RUN_PARTS[{i}]]" for i in (1, 2, 3, 4, 5))
    script = key_names() + f"return {{{{{offsets}}}, {{{shared}}}}}"
    declared = [*keys.all, *group.all]
    seen_group, seen_shared = client.eval(script, len(declared), *declared)
    assert [name.decode() for name in seen_group] == [getattr(group, p) for p in GROUP_PARTS]
    expected = [getattr(keys, part or "run") for part in SHARED_RUN_PARTS]
    assert [name.decode() for name in seen_shared] == expected
