"""The table of every ``ORCHESTRATOR_*`` variable, read from the ``Settings`` model, so the
page cannot drift from the code."""

from __future__ import annotations

import re

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from orchestrator.config.settings import Settings


def _descriptions(doc: str) -> dict[str, str]:
    """The ``Parameters:`` section of a Google-style docstring, as name -> one-line text."""
    found: dict[str, str] = {}
    current: str | None = None
    in_section = False
    for line in doc.splitlines():
        if line.strip() == "Parameters:":
            in_section = True
            continue
        if not in_section:
            continue
        match = re.match(r"^ {8}(\w+): (.*)$", line)
        if match:
            current = match.group(1)
            found[current] = match.group(2).strip()
        elif current is not None and line.startswith(" " * 12):
            found[current] += " " + line.strip()
    return found


def _type_name(field: FieldInfo) -> str:
    text = str(field.annotation)
    text = re.sub(r"<class '([\w.]+)'>", r"\1", text)
    text = re.sub(r"\b[\w]+\.", "", text)  # module prefixes
    return text.replace("typing.", "").replace(" | ", " or ")


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        return "`{}`" if isinstance(value, dict) else "the model's defaults"
    if field.default is PydanticUndefined or field.default is None:
        return "unset"
    return (
        f"`{field.default!r}`".replace("'", '"')
        if isinstance(field.default, str)
        else (f"`{field.default}`")
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("``", "`")


def settings_markdown() -> str:
    """A Markdown table: variable, type, default, meaning (from the model's docstring). A field
    the docstring does not describe fails the build, so a new setting cannot go undocumented."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    described = _descriptions(Settings.__doc__ or "")
    rows = [
        "| Variable | Type | Default | Meaning |",
        "| --- | --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        variable = f"{prefix}{name}".upper()
        if name not in described:
            raise ValueError(f"Settings.{name} is not described in the Settings docstring")
        meaning = _cell(described[name])
        rows.append(f"| `{variable}` | `{_type_name(field)}` | {_default(field)} | {meaning} |")
    return "\n".join(rows)
