"""The worked example of the docs (``examples/invoices.py``) runs as it stands: an embedded
Redis, real workers serving its ``@reducer``, and the local OpenAI-wire server in the model's
place."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_invoice_example_reads_every_invoice_and_totals_them() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.invoices", "--local"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == (
        'reduced_data: {"invoices": 4, "totals": {"EUR": 1248.7, "USD": 15800.0}, "unread": []}'
    )
    # The handwritten receipt's first answer gave its total as printed: retried once.
    receipt = next(line for line in lines if line.startswith("kiosk-scan.txt"))
    assert "EUR      14.20  (2 model call(s))" in receipt
