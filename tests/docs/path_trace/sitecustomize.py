"""Records which of the project's Python files a task's thread runs code of, for
``tests/docs/test_how_it_works.py``: on when ``ORCHESTRATOR_PATH_TRACE`` names a folder (the test
puts this folder on the worker's ``PYTHONPATH``; Python imports ``sitecustomize`` at start).

Only calls made while a Celery task runs on the calling thread count (between ``task_prerun``
and ``task_postrun``), so a worker's start-up and its background threads (heartbeats, the
watchdog) are not the path of a run. Each file is written once, when first seen, with the time,
so a killed process loses nothing already seen.
"""

import os
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

FOLDER = os.environ.get("ORCHESTRATOR_PATH_TRACE")
ROOT = str(Path(__file__).resolve().parents[3]) + os.sep
PACKAGES = ("orchestrator", "workers", "tasks", "learners")


def _install(folder: str) -> None:
    seen: set[str] = set()
    in_task = threading.local()
    out = open(Path(folder) / f"{os.getpid()}.txt", "a", buffering=1)  # noqa: SIM115
    lock = threading.Lock()

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event != "call" or not getattr(in_task, "on", False):
            return
        name = frame.f_code.co_filename
        if name in seen or not name.startswith(ROOT):
            return
        relative = name[len(ROOT) :]
        if not relative.startswith(PACKAGES) or frame.f_code.co_name == "<module>":
            return
        with lock:
            if name not in seen:
                seen.add(name)
                out.write(f"{time.time():.6f} {relative}\n")

    def started(**_: Any) -> None:
        in_task.on = True

    def ended(**_: Any) -> None:
        in_task.on = False

    from celery import signals

    signals.task_prerun.connect(started, weak=False)
    signals.task_postrun.connect(ended, weak=False)
    threading.setprofile(profile)
    sys.setprofile(profile)


if FOLDER:
    _install(FOLDER)
