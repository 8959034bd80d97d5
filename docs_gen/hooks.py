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


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Put each marker's generated Markdown in its place."""
    for marker, generate in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, generate())
    return markdown
