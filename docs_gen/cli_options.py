"""The CLI's commands and options, read from its argparse parser (``orchestrator.cli.parser``), so
the page cannot drift from the code."""

from __future__ import annotations

import argparse

from orchestrator.cli.parser import build_parser as _parser


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.extend(action.choices.items())
    return found


def _helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    helps: dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                helps[choice.dest] = choice.help or ""
    return helps


def _option_row(action: argparse.Action) -> str:
    names = ", ".join(f"`{name}`" for name in action.option_strings) or f"`{action.dest}`"
    default = action.default
    if isinstance(action, argparse._StoreTrueAction) or default in (None, argparse.SUPPRESS):
        shown = ""
    else:
        shown = f"`{default}`"
    choices = ", ".join(f"`{choice}`" for choice in action.choices or ())
    text = (action.help or "").replace("|", "\\|")
    if choices:
        text = f"{text} (one of {choices})".strip()
    if action.required and action.option_strings:
        text = f"required. {text}".strip()
    return f"| {names} | {shown} | {text} |"


def _section(prog: str, parser: argparse.ArgumentParser, help_text: str, level: int) -> list[str]:
    lines = [f"{'#' * level} `{prog}`", ""]
    if help_text:
        lines += [help_text[0].upper() + help_text[1:].rstrip(".") + ".", ""]
    usage = parser.format_usage().strip().removeprefix("usage: ")
    lines += ["```", usage, "```", ""]
    actions = [
        action
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction)
    ]
    if actions:
        lines += ["| Argument | Default | Meaning |", "| --- | --- | --- |"]
        lines += [_option_row(action) for action in actions]
        lines.append("")
    helps = _helps(parser)
    for name, sub in _subcommands(parser):
        lines += _section(f"{prog} {name}", sub, helps.get(name, ""), min(level + 1, 4))
    return lines


def cli_markdown() -> str:
    """Every command of ``orchestrator``, its usage line and a table of its arguments."""
    parser = _parser()
    return "\n".join(_section("orchestrator", parser, parser.description or "", 2))
