"""Map-reduce items: any JSON values, each kept as the text its mapper reads.

A string item is kept as it is; any other JSON value (an object, a list, a number, true, false,
null) as its compact JSON, so that mapper ``i`` reads ``"{task}\\n\\nProcess this item:
{item}"`` with ``{"id": 7}`` in it rather than Python's ``{'id': 7}``. Every item is checked
before anything is dispatched: the limits of ``orchestrator/models/input_limits.py`` (depth,
finite numbers, valid Unicode, sizes), and JSON types only.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.errors import InvalidRunError
from orchestrator.models.input_limits import check_items, check_request_value
from orchestrator.models.schemas import compact


def item_texts(items: object) -> list[str]:
    """``items`` as the texts the mappers read, or ``InvalidRunError`` naming the item that
    cannot be one (``items[3]: ...``)."""
    if isinstance(items, str | bytes | dict) or not isinstance(items, Sequence):
        raise InvalidRunError("items must be a list of JSON values (strings, objects, numbers...)")
    if not items:
        raise InvalidRunError("items must not be empty: a map-reduce needs at least one item")
    texts: list[str] = []
    for position, item in enumerate(items):
        if isinstance(item, str):
            texts.append(item)
            continue
        where = f"items[{position}]"
        check_request_value(item, where)
        try:
            texts.append(compact(item))
        except (TypeError, ValueError) as error:
            raise InvalidRunError(f"{where}: not a JSON value ({error})") from None
    check_items(texts)
    return texts
