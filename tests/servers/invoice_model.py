"""The model of the worked invoice example (``examples/invoices.py --local``): a local server
speaking the OpenAI Chat Completions wire format (``tests/servers/structured_wire.ChatServer``,
which refuses what strict structured outputs refuse) that reads an invoice's fields with regular
expressions. The handwritten receipt is first answered with its total as printed ("14,20"), not
a number: the worker's validation gives it back, and the second answer is right."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.servers.structured_wire import ChatServer, last_user

RETRY = "does not match the required JSON Schema"
_AMOUNT = re.compile(
    r"(?:Total due|Amount due|Total|Summe):?\s*(?:([A-Z]{3})\s*)?([\d.,]+)\s*([A-Z]{3})?"
)
_NUMBER = re.compile(r"(?:Invoice no\.|INVOICE #|Invoice|Beleg Nr\.)\s*([A-Z0-9-]+)")


def read_invoice(body: dict[str, Any]) -> str:
    """The answer to one request: the invoice's fields as JSON."""
    first = next(m["content"] for m in body["messages"] if m["role"] == "user")
    item = json.loads(first.split("Process this item: ", 1)[1])
    text = item["text"]
    amount = _AMOUNT.search(text)
    number = _NUMBER.search(text)
    assert amount is not None and number is not None, text
    currency = amount.group(1) or amount.group(3)
    printed = amount.group(2)
    retried = RETRY in last_user(body)
    if "," in printed and "." not in printed and not retried:
        return json.dumps(
            {"number": number.group(1), "vendor": _vendor(text), "currency": currency,
             "total": printed}
        )  # fmt: skip
    total = float(printed.replace(",", "") if "." in printed else printed.replace(",", "."))
    fields = {"number": number.group(1), "vendor": _vendor(text), "currency": currency}
    return json.dumps({**fields, "total": total})


def _vendor(text: str) -> str:
    first_line = text.splitlines()[0]
    return re.sub(r"\s*[,(].*$", "", first_line)


def invoice_server() -> ChatServer:
    return ChatServer(read_invoice)
