"""The runnable examples of the docs and the README: every fenced Python block that carries a
file name (```` ```python title="name.py" ````), which the suite executes against running
workers (``tests/test_docs_examples.py``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_BLOCK = re.compile(r'^```python title="([^"]+)"\n(.*?)^```$', re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Example:
    """One runnable block: the page it is on, its title, and its code."""

    page: str
    title: str
    code: str

    @property
    def id(self) -> str:
        """``page:title``, unique within the docs."""
        return f"{self.page}:{self.title}"


def sources(root: Path = ROOT) -> list[Path]:
    """The README and every page under ``docs/``."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def examples(root: Path = ROOT) -> list[Example]:
    """Every runnable block of the README and the docs, in page order."""
    found: list[Example] = []
    for path in sources(root):
        page = path.relative_to(root).as_posix()
        for match in _BLOCK.finditer(path.read_text()):
            found.append(Example(page=page, title=match.group(1), code=match.group(2)))
    return found
