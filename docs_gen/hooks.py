"""MkDocs hooks (``hooks:`` in ``mkdocs.yml``): replace a page's markers with what is
generated from the code at build time."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from docs_gen.cli_options import cli_markdown
from docs_gen.settings_table import settings_markdown

MARKERS: dict[str, Callable[[], str]] = {
    "<!-- generated: settings -->": settings_markdown,
    "<!-- generated: cli -->": cli_markdown,
}


GITHUB_ONLY = "<!-- github only -->"
"""Ends a line that is for readers of the page on GitHub, where nothing is generated (a note
saying where the content comes from): the site drops it."""


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Drop the GitHub-only lines and put each marker's generated Markdown in its place."""
    lines = markdown.split("\n")
    markdown = "\n".join(line for line in lines if not line.rstrip().endswith(GITHUB_ONLY))
    for marker, generate in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, generate())
    return markdown
