"""Typed work, the worked example: read invoices into records with a schema, total them with a
reducer function.

Each invoice is an item (a JSON object); each mapper answers with an ``Invoice`` that its
worker validates (a malformed answer is given back to the model, within the run's budget);
``invoice_totals``, a ``@reducer`` the workers serve, adds them up per currency without a model
call. The result's ``reduced_data`` is what it returned.

Run it all on this machine (an embedded Redis, two workers serving this module, and a local
server speaking the OpenAI Chat Completions wire format in the model's place)::

    python -m examples.invoices --local

or against OpenAI: start workers that serve this module and hold the key, then submit::

    ORCHESTRATOR_MODULES=examples.invoices OPENAI_API_KEY=sk-... orchestrator worker
    python -m examples.invoices --model gpt-4o-mini
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from orchestrator import AgentOutput, AgentSpec, Budget, Client, ModelConfig, reducer
from orchestrator.models.results import MapReduceResult


class Invoice(BaseModel):
    """What each mapper reads off its invoice."""

    number: str = Field(description="the invoice number as printed, e.g. INV-0142")
    vendor: str = Field(description="who issued the invoice")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. EUR")
    total: float = Field(description="the amount due, taxes included")


@reducer
def invoice_totals(task: str, outputs: Sequence[AgentOutput]) -> dict[str, Any]:
    """The total due per currency over the invoices read, and the ones that could not be."""
    totals: dict[str, float] = {}
    unread: list[str] = []
    for output in outputs:
        if not output.succeeded():
            unread.append(output.name)
            continue
        invoice = output.parsed(Invoice)
        totals[invoice.currency] = round(totals.get(invoice.currency, 0.0) + invoice.total, 2)
    return {"invoices": len(outputs) - len(unread), "totals": totals, "unread": unread}


SAMPLE_INVOICES = [
    {
        "file": "acme-0142.txt",
        "text": "ACME Tools GmbH, Berlin\nInvoice no. INV-0142, 2024-03-01\n"
        "12 x torque wrench ... 1,037.40\nVAT 19% ... 197.10\nTotal due: EUR 1,234.50",
    },
    {
        "file": "northwind-88.txt",
        "text": "Northwind Traders Inc.\nINVOICE #NW-88\nConsulting, March: 40 h x 95.00\n"
        "Amount due: USD 3,800.00",
    },
    {
        "file": "kiosk-scan.txt",
        "text": "Kiosk Lindner (handwritten receipt)\nBeleg Nr. 17\n3 Kaffee, 2 Croissants\n"
        "Summe: 14,20 EUR",
    },
    {
        "file": "globex-2024-07.txt",
        "text": "Globex Corporation\nInvoice GX-2024-07 dated 2024-07-15\nLicence renewal\n"
        "Total: USD 12,000.00",
    },
]
TASK = "Read this invoice's number, vendor, currency and total due."


def extractor(model: ModelConfig) -> AgentSpec:
    """The mapper: one model call per invoice, answering an ``Invoice``."""
    return AgentSpec(
        name="reader",
        instructions="You read invoices and receipts and report their fields exactly.",
        model=model,
        output_schema=Invoice,  # sent as its JSON Schema: data, never code
        output_retries=2,
        max_turns=1,
    )


def read_invoices(client: Client, model: ModelConfig) -> MapReduceResult:
    """Submit the sample invoices, wait, and return the result."""
    handle = client.map_reduce(
        TASK,
        SAMPLE_INVOICES,
        extractor(model),
        "invoice_totals",
        max_concurrent=4,
        budget=Budget(max_tokens=200_000),
    )
    return handle.result(timeout=300)


def report(result: MapReduceResult) -> str:
    """One line per invoice, then the totals."""
    lines = []
    for item, output in zip(SAMPLE_INVOICES, result.map_outputs, strict=True):
        if output.succeeded():
            got = output.parsed(Invoice)
            read = f"{got.number:<12} {got.vendor:<28} {got.currency} {got.total:>10.2f}"
        else:
            read = f"not read: {output.error}"
        lines.append(f"{item['file']:<20} {read}  ({output.turns} model call(s))")
    lines.append(f"reduced_data: {json.dumps(result.reduced_data, sort_keys=True)}")
    return "\n".join(lines)


def run_local() -> MapReduceResult:
    """Everything on this machine: the local OpenAI-wire server of the tests as the model."""
    from orchestrator.local import LocalRedis, LocalWorker, wait_for_workers
    from tests.servers.invoice_model import invoice_server

    server = invoice_server()
    redis_server = LocalRedis()
    logs = Path(tempfile.mkdtemp(prefix="ao-invoices-"))
    env = {
        "ORCHESTRATOR_REDIS_URL": redis_server.url,
        "ORCHESTRATOR_MODULES": "examples.invoices",
        "ORCHESTRATOR_ENDPOINTS": server.endpoints("local-openai"),
        "OPENAI_API_KEY": "local-key",  # the local server takes any key
    }
    workers = [
        LocalWorker(f"invoices{n}-{os.getpid()}", env, log_path=logs / f"worker{n}.log")
        for n in range(2)
    ]
    try:
        client = Client(redis_url=redis_server.url)
        wait_for_workers(client.redis, [worker.hostname for worker in workers])
        model = ModelConfig(provider="openai", model="gpt-4o-mini", endpoint="local-openai")
        return read_invoices(client, model)
    finally:
        for worker in workers:
            worker.stop()
        redis_server.stop()
        server.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--local", action="store_true", help="run everything on this machine")
    parser.add_argument("--model", default="gpt-4o-mini", help="the OpenAI model to read with")
    args = parser.parse_args(argv)
    if args.local:
        result = run_local()
    else:
        result = read_invoices(Client(), ModelConfig(provider="openai", model=args.model))
    print(report(result))
    totals = result.reduced_data
    return 0 if isinstance(totals, dict) and totals["unread"] == [] else 1


if __name__ == "__main__":
    raise SystemExit(main())
