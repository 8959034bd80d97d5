"""An agent's final answer checked against its output schema, and what a retry tells the model.

The answer must be one JSON value (a Markdown code fence around it is tolerated: models without
a native structured-output mode add one) that the schema validates (``jsonschema``, see
``orchestrator/models/schemas.py``). An answer that does not is given back to the model with
what was wrong, as a new user message, while ``AgentSpec.output_retries`` allows; each retry
is a model call like any other. The problems reported are the first few by place in the
answer, each cut, so that neither a retry's prompt nor the final error grows with the answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from orchestrator.models import ModelConfig
from orchestrator.models.schemas import OUTPUT_SCHEMA_OPTION, compact, validator

MAX_PROBLEMS = 3
"""The most validation problems reported (a retry's prompt, the final error)."""
PROBLEM_CHARS = 300
"""The most characters of one problem's description."""
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n(.*)\n\s*```$", re.DOTALL)


@dataclass(frozen=True)
class CheckedAnswer:
    """An answer as checked: its parsed value and compact JSON when valid, else the problems
    found (the first ``MAX_PROBLEMS``, each cut) and how many there were."""

    data: Any = None
    answer: str = ""
    problems: list[str] = field(default_factory=list)
    found: int = 0

    @property
    def valid(self) -> bool:
        return not self.problems


def asked(model: ModelConfig, schema: dict[str, Any] | None) -> ModelConfig:
    """``model`` with ``schema`` among its options, where each surface finds it and asks for
    it in its native mode (unchanged without a schema)."""
    if schema is None:
        return model
    return model.model_copy(update={"options": {**model.options, OUTPUT_SCHEMA_OPTION: schema}})


def check_answer(schema: dict[str, Any], text: str) -> CheckedAnswer:
    """``text`` parsed as JSON and validated against ``schema``."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    try:
        value = json.loads(fenced.group(1) if fenced else stripped)
    except json.JSONDecodeError as error:
        shown = stripped[:80] + (" [...]" if len(stripped) > 80 else "")
        problem = f"not JSON ({error.msg} at character {error.pos}): {shown!r}"
        return CheckedAnswer(problems=[problem], found=1)
    errors = sorted(validator(schema).iter_errors(value), key=lambda e: list(map(str, e.path)))
    if not errors:
        return CheckedAnswer(data=value, answer=compact(value))
    problems = [_cut(f"at {error.json_path}: {error.message}") for error in errors]
    return CheckedAnswer(problems=problems[:MAX_PROBLEMS], found=len(problems))


def retry_prompt(checked: CheckedAnswer) -> str:
    """The user message that gives an invalid answer back to the model."""
    return (
        "Your answer does not match the required JSON Schema:\n"
        f"{_listed(checked)}\n"
        "Answer again with only the JSON value, matching the schema."
    )


def final_error(checked: CheckedAnswer, calls: int) -> str:
    """The error of an agent none of whose ``calls`` answers matched its schema."""
    return f"output_schema: no valid answer in {calls} model call(s); the last: {problems(checked)}"


def problems(checked: CheckedAnswer) -> str:
    """What was wrong with an answer, on one line."""
    more = checked.found - len(checked.problems)
    return "; ".join(checked.problems) + (f"; and {more} more" if more > 0 else "")


def _listed(checked: CheckedAnswer) -> str:
    more = checked.found - len(checked.problems)
    tail = f"\n- and {more} more" if more > 0 else ""
    return "\n".join(f"- {problem}" for problem in checked.problems) + tail


def _cut(text: str) -> str:
    return text if len(text) <= PROBLEM_CHARS else text[: PROBLEM_CHARS - 9] + " [...cut]"
