"""The README's "How it works" list is the path of one map-reduce, as it runs.

A map-reduce is submitted to a real worker whose task threads record every file of the project
they run code of (``tests/docs/path_trace/sitecustomize.py``); the client records its own calls from
submit to result. Every file the README lists must have run, in the listed order (within the
process that ran it first), and the list holds at most 20 files.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from orchestrator import AgentSpec, Client, ModelConfig
from orchestrator.local import LocalRedis, LocalWorker
from tests.conftest import FAST_TIMINGS, start_workers

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("orchestrator", "workers", "tasks", "learners")


def first_runs(calls: list[tuple[float, str]]) -> dict[str, float]:
    """When each file of ``calls`` (when, file) first ran."""
    first: dict[str, float] = {}
    for when, name in calls:
        first[name] = min(first.get(name, when), when)
    return first


def readme_path() -> list[str]:
    """The files the README lists under "The path of one map-reduce", in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### The path of one map-reduce", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\d+\. `([\w/]+\.py)`", section, flags=re.M)


def client_side(run: Any) -> tuple[Any, list[tuple[float, str]]]:
    calls: list[tuple[float, str]] = []
    prefix = str(ROOT) + os.sep

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        name = frame.f_code.co_filename
        if event == "call" and name.startswith(prefix) and frame.f_code.co_name != "<module>":
            relative = name[len(prefix) :]
            if relative.startswith(PACKAGES):
                calls.append((time.time(), relative))

    sys.setprofile(profile)
    try:
        result = run()
    finally:
        sys.setprofile(None)
    return result, calls


def test_the_readme_lists_the_path_of_one_map_reduce(tmp_path: Path) -> None:
    redis_server = LocalRedis()
    trace = tmp_path / "trace"
    trace.mkdir()
    env = {
        "ORCHESTRATOR_REDIS_URL": redis_server.url,
        **FAST_TIMINGS,
        "ORCHESTRATOR_PATH_TRACE": str(trace),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "docs" / "path_trace"), str(ROOT)]),
    }
    workers: list[LocalWorker] = []
    try:
        workers = start_workers(env, ["path"], tmp_path)
        client = Client(redis_url=redis_server.url)
        scripted = ModelConfig(provider="scripted")
        mapper = AgentSpec(name="mapper", model=scripted)
        reducer = AgentSpec(name="reducer", model=scripted)

        def run() -> Any:
            handle = client.map_reduce("Summarise", ["a", "b", "c"], mapper, reducer)
            return handle.result(timeout=60)

        result, calls = client_side(run)
        assert result.reduced_answer
    finally:
        for worker in workers:
            worker.stop()
        redis_server.stop()
    traces = {"client": first_runs(calls)}
    for part in trace.iterdir():
        lines = [line.split(" ", 1) for line in part.read_text().splitlines()]
        traces[part.stem] = first_runs([(float(when), name) for when, name in lines])
    listed = readme_path()
    first_in: dict[str, tuple[float, str]] = {}
    for process, runs in traces.items():
        for name, when in runs.items():
            first_in[name] = min(first_in.get(name, (when, process)), (when, process))
    assert [name for name in listed if name not in first_in] == []
    for process, runs in traces.items():
        # Each listed file in the process that ran it first, in the listed order there: a
        # process's clock orders its own steps, not another's (the client's wait may begin
        # after a worker's first task).
        mine = [name for name in listed if first_in[name][1] == process]
        assert sorted(mine, key=runs.__getitem__) == mine, process
    assert len(listed) <= 20
