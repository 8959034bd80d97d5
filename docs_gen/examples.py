"""The runnable examples of the docs and the README: every fenced Python block that carries a
file name (```` ```python title="name.py" ````), which the suite executes against running
workers (``tests/docs/test_docs_examples.py``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_OPENING = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?:python|py)\b(?P<info>.*)$"
)
_TITLE = re.compile(r'title="([^"]+)"')


@dataclass(frozen=True)
class Example:
    """One runnable block: the page it is on, its title, its code (dedented by the fence's
    indent) and the page's line number of its first line."""

    page: str
    title: str
    code: str
    line: int = 1

    @property
    def id(self) -> str:
        """``page:title``, unique within the docs."""
        return f"{self.page}:{self.title}"


def sources(root: Path = ROOT) -> list[Path]:
    """The README and every page under ``docs/``."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def _blocks(page: str, text: str) -> list[Example]:
    """Every Python fence of ``text`` whose info string has a ``title="..."``, indented or not."""
    found: list[Example] = []
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        opening = _OPENING.match(lines[number])
        number += 1
        if opening is None:
            continue
        indent, fence = opening["indent"], opening["fence"]
        end = number
        while end < len(lines) and not _is_closing(lines[end], indent, fence):
            end += 1
        title = _TITLE.search(opening["info"])
        if title is not None:
            body = [
                line[len(indent) :] if line.startswith(indent) else line.lstrip()
                for line in lines[number:end]
            ]
            code = "".join(f"{line}\n" for line in body)
            found.append(Example(page=page, title=title[1], code=code, line=number + 1))
        number = end + 1
    return found


def _is_closing(line: str, indent: str, fence: str) -> bool:
    stripped = line.strip()
    return line.startswith(indent) and stripped.startswith(fence) and not stripped.strip(fence[0])


def examples(root: Path = ROOT) -> list[Example]:
    """Every runnable block of the README and the docs, in page order."""
    found: list[Example] = []
    for path in sources(root):
        found += _blocks(path.relative_to(root).as_posix(), path.read_text())
    return found
