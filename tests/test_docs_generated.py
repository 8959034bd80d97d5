"""The pages the docs site generates at build time from the code (``docs_gen/``): every
setting and every CLI command is on them."""

from __future__ import annotations

import argparse

from docs_gen.cli_options import cli_markdown
from docs_gen.settings_table import settings_markdown
from orchestrator.cli import _parser
from orchestrator.settings import Settings


def test_every_setting_is_in_the_table_with_a_meaning() -> None:
    rows = {
        line.split("|")[1].strip(): line.split("|")[-2].strip()
        for line in settings_markdown().splitlines()[2:]
    }
    assert set(rows) == {f"`ORCHESTRATOR_{name.upper()}`" for name in Settings.model_fields}
    assert all(rows.values())


def _commands(parser: argparse.ArgumentParser, prog: str) -> list[str]:
    found = [prog]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, f"{prog} {name}")
    return found


def test_every_cli_command_and_option_is_on_the_page() -> None:
    page = cli_markdown()
    for command in _commands(_parser(), "orchestrator"):
        assert f"`{command}`" in page
    assert "`--max-concurrent`" in page and "`--no-wait`" in page
