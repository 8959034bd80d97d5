"""The process ``orchestrator worker`` becomes (``orchestrator/supervisor.py``) with real child
processes: how it passes on a stop."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from orchestrator import supervisor
from tests.helpers import wait_for

# A child that counts the SIGTERMs it gets in its file and ends QUICK or after a while (a
# Celery worker finishing its members in a warm shutdown).
CHILD = """
import signal, sys, time
path, quick = sys.argv[1], sys.argv[2] == "quick"
def stop(signum, frame):
    with open(path, "a") as out:
        out.write("TERM\\n")
    if quick:
        sys.exit(0)
signal.signal(signal.SIGTERM, stop)
with open(path, "a") as out:
    out.write("ready\\n")
while "TERM" not in open(path).read():
    time.sleep(0.02)
time.sleep(2)
"""


def test_a_stop_reaches_each_worker_once_even_when_another_ends_first(tmp_path: Path) -> None:
    quick, slow = tmp_path / "quick", tmp_path / "slow"
    commands = [
        [sys.executable, "-c", CHILD, str(quick), "quick"],
        [sys.executable, "-c", CHILD, str(slow), "slow"],
    ]
    process = subprocess.Popen([sys.executable, supervisor.__file__, json.dumps(commands)])
    try:
        wait_for(
            lambda: all(p.exists() and "ready" in p.read_text() for p in (quick, slow)),
            "both children ready",
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    # The quick one ended first; the slow one, still stopping, was not told to stop again.
    assert slow.read_text().count("TERM") == 1
    assert quick.read_text().count("TERM") == 1
