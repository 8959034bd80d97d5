"""What the CLI reads from its arguments and the files they name, checked before anything is
sent: each mistake is a ``UsageError`` naming the option or the file and the field."""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from orchestrator.cli.errors import UsageError, field_errors
from orchestrator.client import Client
from orchestrator.models import AgentSpec, RunRecord
from orchestrator.models.learner_limits import record_over_limits
from orchestrator.reducers import REDUCER_NAME

# What a branches file may hold: the arguments of Client.parallel_branches.
BRANCHES_KEYS = tuple(
    name for name in inspect.signature(Client.parallel_branches).parameters if name != "self"
)


def read_text(what: str, source: str) -> str:
    """The text of file ``source`` (``-``: stdin); ``what`` names it in errors."""
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text()
    except UnicodeDecodeError:
        raise UsageError(f"{what}: {source} is not UTF-8 text") from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise UsageError(f"{what}: cannot read {source}: {reason}") from None


def _json(what: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{what}: not valid JSON ({error})") from None


def agent_spec(option: str, text: str) -> AgentSpec:
    """The ``AgentSpec`` of ``--mapper`` / ``--reducer``: JSON inline or ``@file``."""
    if text.startswith("@"):
        path = text[1:]
        data = _json(f"{option} {path}", read_text(option, path))
    else:
        data = _json(option, text)
    try:
        return AgentSpec.model_validate(data)
    except ValidationError as error:
        raise UsageError(f"{option}: {field_errors(error)}") from None


JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")


def read_items(source: str, jsonl: bool = False) -> list[Any]:
    """Items from a file (or ``-`` for stdin): JSON lines, each line one JSON value (with
    ``jsonl``, or a file named ``*.jsonl`` or ``*.ndjson``); else a JSON list, or one text
    item per line."""
    text = read_text("--items", source)
    if jsonl or source.endswith(JSON_LINES_SUFFIXES):
        return json_lines(source, text)
    stripped = text.strip()
    if stripped.startswith("["):
        items = _json(f"--items {source}", stripped)
        if not isinstance(items, list):  # a line that starts with "[" but is not a list
            raise UsageError(f"--items {source}: a JSON list was expected")
        return items
    return [line for line in (raw.strip() for raw in text.splitlines()) if line]


def json_lines(source: str, text: str) -> list[Any]:
    """One JSON value per non-blank line of ``text``; ``UsageError`` naming the first line that
    is not one."""
    items: list[Any] = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            items.append(_json(f"--items {source} line {number}", line))
    return items


def reducer_of(text: str) -> AgentSpec | str:
    """``--reducer``: an ``AgentSpec`` (JSON inline or ``@file``), or the name of a reducer
    function the workers register (checked at submit)."""
    if REDUCER_NAME.match(text):
        return text
    return agent_spec("--reducer", text)


def read_branches_file(path: str) -> dict[str, Any]:
    """A branches submission from a JSON or YAML file (YAML is a superset of JSON): a mapping
    with ``configs`` and any other argument of ``Client.parallel_branches``."""
    try:
        data = yaml.safe_load(read_text("branches file", path))
    except yaml.YAMLError as error:
        # PyYAML's message spans lines (with a caret under the column); print_error folds it.
        raise UsageError(f"{path}: not valid YAML or JSON: {error}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} must hold a mapping with at least 'configs'")
    unknown = sorted(str(key) for key in data if key not in BRANCHES_KEYS)
    if unknown:
        raise UsageError(
            f"{path}: unknown key {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(BRANCHES_KEYS)})"
        )
    if "configs" not in data:
        raise UsageError(f"{path}: 'configs' is required: a list of agent specs")
    return data


def read_records(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The valid ``RunRecord`` lines of ``text`` (JSON lines), and why each other line was
    skipped: the learners validate with the same model, so what is sent is what they take."""
    records: list[dict[str, Any]] = []
    skipped: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = RunRecord.model_validate_json(line)
        except ValidationError as error:
            if error.errors()[0]["type"] == "json_invalid":
                skipped.append(f"line {number}: not JSON ({error.errors()[0]['msg']}), skipped")
            else:
                skipped.append(f"line {number}: not a run record ({field_errors(error)}), skipped")
            continue
        problem = record_over_limits(record)
        if problem is not None:
            skipped.append(f"line {number}: over the learners' limits ({problem}), skipped")
            continue
        records.append(record.model_dump(mode="json"))
    return records, skipped
