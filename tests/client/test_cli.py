"""The ``orchestrator`` command: submit, status, cancel, and the demo end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

from orchestrator.local import LocalWorker, free_port, redis_answers
from tests.helpers import run_cli


def test_submit_map_reduce_reads_items_from_stdin_and_prints_json(
    worker_env: dict[str, str], workers: list[LocalWorker]
) -> None:
    done = run_cli(
        "submit",
        "map-reduce",
        "--task",
        "Shout",
        "--max-concurrent",
        "2",
        "--output",
        "json",
        env=worker_env,
        stdin="alpha\nbeta\n\ngamma\n",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["state"] == "succeeded"
    assert [o["name"] for o in result["map_outputs"]] == ["mapper_0", "mapper_1", "mapper_2"]
    assert "Process this item: gamma" in result["map_outputs"][2]["answer"]

    status = run_cli("status", result["run_id"], "--output", "json", env=worker_env)
    assert json.loads(status.stdout)["counts"]["ok"] == 3
    cancel = run_cli("cancel", result["run_id"], env=worker_env)
    assert "had already ended" in cancel.stdout


def test_status_of_an_unknown_run_fails_clearly(worker_env: dict[str, str]) -> None:
    done = run_cli("status", "nope", env=worker_env)
    assert done.returncode == 1
    assert "no run with id 'nope'" in done.stderr


def test_submit_with_bad_input_fails_before_dispatch(worker_env: dict[str, str]) -> None:
    done = run_cli(
        "submit", "map-reduce", "--task", "x", "--max-concurrent", "0", env=worker_env, stdin="a\n"
    )
    assert done.returncode == 2  # a usage error: nothing was dispatched
    assert "max_concurrent" in done.stderr


def test_demo_runs_end_to_end_on_an_embedded_redis_and_leaves_no_process() -> None:
    unused = f"redis://127.0.0.1:{free_port()}/0"  # nothing answers: the demo embeds Redis
    done = run_cli("demo", env={"ORCHESTRATOR_REDIS_URL": unused}, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "starting an embedded redis-server" in done.stdout
    assert "Mapper outputs (12)" in done.stdout
    assert "Reduced answer" in done.stdout
    assert "succeeded, 12/12 ended" in " ".join(done.stdout.split())
    assert "Stopped the workers and the embedded Redis" in done.stdout
    embedded_url = re.search(r"Embedded Redis at (\S+)", done.stdout)
    assert embedded_url and not redis_answers(embedded_url.group(1))
    # Its workers are the processes given its embedded Redis (the machine may run other demos).
    assert processes_with(f"ORCHESTRATOR_REDIS_URL={embedded_url.group(1)}") == []


def processes_with(variable: str) -> list[int]:
    """The live processes whose environment holds ``variable`` (``NAME=VALUE``)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            environ = (entry / "environ").read_bytes() if entry.name.isdigit() else b""
        except OSError:  # ended meanwhile, or not ours
            continue
        if variable.encode() in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def test_submit_branches_reads_a_yaml_file(
    tmp_path: Path, worker_env: dict[str, str], workers: list[LocalWorker]
) -> None:
    spec = tmp_path / "branches.yaml"
    spec.write_text(
        """
prompt: Which is better?
strategy: elaborate
session_id: cli-session
configs:
  - {name: terse, config_id: terse, model: {provider: scripted, options: {answer: "no"}}}
  - {name: wordy, config_id: wordy, model: {provider: scripted, options: {answer: "yes, because"}}}
"""
    )
    done = run_cli("submit", "branches", str(spec), "--output", "json", env=worker_env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["state"] == "succeeded"
    assert result["selected_loop_id"] == "cli-session.wordy.2"
    table = run_cli("submit", "branches", str(spec), env=worker_env)
    assert "cli-session.terse.1" in table.stdout and "succeeded" in table.stdout


def test_submit_branches_with_a_bad_file_fails_before_dispatch(
    tmp_path: Path, worker_env: dict[str, str]
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("configs: []\nprompt: q\n")
    done = run_cli("submit", "branches", str(spec), env=worker_env)
    assert done.returncode == 2 and "configs" in done.stderr


def test_submit_map_reduce_reads_json_lines_and_names_a_reducer_function(
    worker_env: dict[str, str], workers: list[LocalWorker], tmp_path: Path
) -> None:
    items = tmp_path / "invoices.jsonl"
    items.write_text('{"id": "A-1", "amount": 3.5}\n\n[1, 2]\n"plain"\n')
    schema = {"type": "object", "properties": {"total": {"type": "number", "minimum": 1.5}}}
    mapper = json.dumps({"name": "m", "output_schema": schema})
    done = run_cli(
        "submit", "map-reduce", "--task", "Total", "--items", str(items), "--mapper", mapper,
        "--reducer", "sum_totals", "--output", "json", env=worker_env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["reduced_data"] == {"task": "Total", "count": 3, "total": 4.5}
    assert [o["data"] for o in result["map_outputs"]] == [{"total": 1.5}] * 3


def test_a_json_line_that_is_not_json_is_named_by_its_line(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    items = tmp_path / "items.txt"
    items.write_text('{"ok": 1}\n{"broken": \n')
    args = ("submit", "map-reduce", "--task", "t", "--items", str(items), "--jsonl")
    done = run_cli(*args, env=worker_env)
    assert done.returncode == 2
    assert f"--items {items} line 2: not valid JSON" in done.stderr
