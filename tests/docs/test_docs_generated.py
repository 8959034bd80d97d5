"""The pages the docs site generates at build time from the code (``docs_gen/``): every
setting and every CLI command is on them."""

from __future__ import annotations

import argparse

from docs_gen.cli_options import cli_markdown
from docs_gen.settings_table import settings_markdown
from orchestrator.cli import _parser
from orchestrator.config.settings import Settings


def test_every_setting_is_in_the_table_with_a_meaning() -> None:
    rows = {
        line.split("|")[1].strip(): line.split("|")[-2].strip()
        for line in settings_markdown().splitlines()[2:]
    }
    assert set(rows) == {f"`ORCHESTRATOR_{name.upper()}`" for name in Settings.model_fields}
    assert all(rows.values())


def _parsers(
    parser: argparse.ArgumentParser, prog: str
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(prog, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _parsers(sub, f"{prog} {name}")
    return found


def _sections(page: str) -> dict[str, dict[str, str]]:
    """Each command's heading (``orchestrator submit``) to its table: argument cell to meaning."""
    sections: dict[str, dict[str, str]] = {}
    rows: dict[str, str] = {}
    for line in page.splitlines():
        if line.startswith("#"):
            rows = sections.setdefault(line.lstrip("# ").strip("`"), {})
        elif line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            rows[cells[0]] = cells[-1]
    return sections


def test_every_cli_command_and_argument_is_on_the_page_with_a_meaning() -> None:
    sections = _sections(cli_markdown())
    for prog, parser in _parsers(_parser(), "orchestrator"):
        assert prog in sections, prog
        rows = sections[prog]
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            names = action.option_strings or [action.dest]
            cell = ", ".join(f"`{name}`" for name in names)
            assert cell in rows, f"{prog}: {cell} is not on the page"
            assert rows[cell], f"{prog}: {cell} has no meaning"
