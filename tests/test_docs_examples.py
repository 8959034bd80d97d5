"""Every runnable example of the docs and the README (a fenced Python block with a file name,
see ``docs_gen/examples.py``) runs as it stands against a private redis-server and real
workers: the client each one makes finds them through ``ORCHESTRATOR_REDIS_URL``."""

from __future__ import annotations

from typing import Any

import pytest

from docs_gen.examples import ROOT, Example, examples

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
    assert examples(tmp_path) == [Example(page="docs/page.md", title="a.py", code="x = 1\n")]


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.id for example in EXAMPLES])
def test_example_runs(
    example: Example,
    worker_env: dict[str, str],
    client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in worker_env.items():
        if name.startswith("ORCHESTRATOR_"):
            monkeypatch.setenv(name, value)
    code = compile(example.code, str(ROOT / example.page), "exec")
    exec(code, {"__name__": "__docs_example__"})
