"""How the client turns bad input into ``InvalidRunError``: each message names the place of
the problem (``budget.max_agents: ...``), before anything is dispatched."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from orchestrator.errors import InvalidRunError
from orchestrator.models import Budget
from orchestrator.models.input_limits import check_request_value
from orchestrator.plans.agent_ids import check_agent_id

RequestT = TypeVar("RequestT", bound=BaseModel)


def checked_agent_id(agent_id: str) -> str:
    """``agent_id`` if it may name keys, else ``InvalidRunError``."""
    try:
        return check_agent_id(agent_id)
    except ValueError as invalid:
        raise InvalidRunError(str(invalid)) from None


def validation_message(error: ValidationError) -> str:
    """Pydantic's errors as one line, each with where it is (``mapper.model.provider``)."""
    parts = []
    for issue in error.errors():
        where = ".".join(str(p) for p in issue["loc"]) or "request"
        # A validator's own message reads better without pydantic's "Value error, " before it.
        context = issue.get("ctx") or {}
        message = str(context["error"]) if issue["type"] == "value_error" else issue["msg"]
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def validated(model: type[RequestT], **fields: Any) -> RequestT:
    """The request ``model`` built from ``fields`` (an absent budget is no limit), or
    ``InvalidRunError``."""
    if fields.get("budget") is None:
        fields["budget"] = Budget()
    check_request_value(fields, "")
    try:
        return model.model_validate(fields)
    except ValidationError as error:
        raise InvalidRunError(validation_message(error)) from None
