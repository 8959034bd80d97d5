"""Every runnable example of the docs and the README (a fenced Python block with a file name,
see ``docs_gen/examples.py``) runs as it stands against a private redis-server and real
workers: the client each one makes finds them through ``ORCHESTRATOR_REDIS_URL``."""

from __future__ import annotations

from typing import Any

import pytest

from docs_gen.examples import ROOT, Example, examples
from tests.helpers import environment

EXAMPLES = examples()


def test_the_docs_have_runnable_examples() -> None:
    """The README's example and the Get started pages' are among them, and no two share an id
    (which would hide one from the report)."""
    pages = {example.page for example in EXAMPLES}
    assert "README.md" in pages
    assert {
        "docs/get-started/install.md",
        "docs/get-started/first-map-reduce.md",
        "docs/get-started/first-branches.md",
        "docs/get-started/first-tools.md",
    } <= pages
    ids = [example.id for example in EXAMPLES]
    assert len(ids) == len(set(ids))


def test_an_unmarked_block_is_not_collected(tmp_path: Any) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("```python\nraise SystemExit\n```\n")
    (tmp_path / "docs" / "page.md").write_text(
        '```python title="a.py"\nx = 1\n```\n\n```python\ny = 2\n```\n'
    )
    assert examples(tmp_path) == [
        Example(page="docs/page.md", title="a.py", code="x = 1\n", line=2)
    ]


def test_an_indented_block_or_one_with_more_options_is_collected(tmp_path: Any) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("")
    (tmp_path / "docs" / "page.md").write_text(
        'Text.\n\n1. A step:\n\n    ```python linenums="1" title="b.py"\n    if x:\n'
        "        y = 2\n    ```\n\n````py title='no' title=\"c.py\"\nz = 3\n````\n"
    )
    assert examples(tmp_path) == [
        Example(page="docs/page.md", title="b.py", code="if x:\n    y = 2\n", line=6),
        Example(page="docs/page.md", title="c.py", code="z = 3\n", line=11),
    ]


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.id for example in EXAMPLES])
def test_example_runs(
    example: Example,
    worker_env: dict[str, str],
    client: Any,
) -> None:
    # Blank lines before the code, so that a traceback names the line of the page.
    code = compile("\n" * (example.line - 1) + example.code, str(ROOT / example.page), "exec")
    with environment({n: v for n, v in worker_env.items() if n.startswith("ORCHESTRATOR_")}):
        exec(code, {"__name__": "__main__"})
