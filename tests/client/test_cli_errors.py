"""The CLI on ordinary mistakes: one ``error:`` line, exit code 2 for usage and 1 for runtime
errors, never a traceback; quiet on a closed pipe; user text shown literally; ids whole."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path
from uuid import uuid4

import pytest
from rich.console import Console

from orchestrator import Client
from orchestrator.cli.render import outputs_table
from orchestrator.local import LocalRedis, LocalWorker, free_port
from orchestrator.models import AgentOutput
from orchestrator.models.results import MapReduceResult
from tests.helpers import items, run_cli, scripted

PASSWORD = "pw-never-shown-7d1f"
WIDE = {"COLUMNS": "200"}  # Rich wraps at the terminal width; keep each line whole


def one_error_line(done: subprocess.CompletedProcess[str], code: int) -> str:
    """The single ``error:`` line of a failed command, after checking its exit code."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


# --- mistakes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mapper", "expected"),
    [
        (
            '{"name": "m", "model": {"provider": "nope"}}',
            "error: --mapper: model.provider: unknown provider 'nope' (known providers: ",
        ),
        ('{"model": {"provider": "scripted"}}', "error: --mapper: name: Field required"),
        ("@missing.json", "error: --mapper: cannot read missing.json: No such file or directory"),
        ('{"name": ', "error: --mapper: not valid JSON ("),
    ],
)
def test_a_bad_mapper_is_one_usage_error_naming_the_option_and_field(
    worker_env: dict[str, str], mapper: str, expected: str
) -> None:
    done = run_cli(
        "submit", "map-reduce", "--task", "t", "--mapper", mapper, env=worker_env, stdin="a\n"
    )
    assert one_error_line(done, 2).startswith(expected)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("prompt: q\n", "'configs' is required"),
        (
            "configs: [{name: a, model: {provider: scripted}}]\nbogus: 1\n",
            "unknown key 'bogus' (known: configs, prompt, ",
        ),
        ("configs: [{name: a, model: {provider: nope}}]\n", "configs.0.model.provider: unknown"),
        ("configs: [a\n", "not valid YAML or JSON"),
        ("- just a list\n", "must hold a mapping"),
    ],
)
def test_a_bad_branches_file_is_one_usage_error_naming_the_file_and_key(
    tmp_path: Path, worker_env: dict[str, str], content: str, expected: str
) -> None:
    spec = tmp_path / "branches.yaml"
    spec.write_text(content)
    line = one_error_line(run_cli("submit", "branches", str(spec), env=worker_env), 2)
    assert str(spec) in line and expected in line


def test_missing_files_and_bad_arguments_are_usage_errors(
    tmp_path: Path, worker_env: dict[str, str]
) -> None:
    gone = str(tmp_path / "gone.txt")
    cases = {
        ("submit", "map-reduce", "--task", "t", "--items", gone): f"--items: cannot read {gone}",
        ("submit", "branches", gone): f"branches file: cannot read {gone}",
        ("learn", gone): f"learn: cannot read {gone}",
        ("submit", "map-reduce"): "the following arguments are required: --task",
        ("status",): "the following arguments are required: run_id",
        ("submit", "map-reduce", "--task", "t", "--max-concurrent", "x"): "invalid int value",
        ("nonsense",): "invalid choice: 'nonsense'",
    }
    for args, expected in cases.items():
        assert expected in one_error_line(run_cli(*args, env=worker_env), 2)


def test_an_unreachable_redis_is_one_runtime_error_naming_the_url_without_its_password() -> None:
    port = free_port()  # nothing listens there
    env = {"ORCHESTRATOR_REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:{port}/0", **WIDE}
    for args in (("status", "0" * 32), ("events", "0" * 32), ("tools",), ("cancel", "0" * 32)):
        done = run_cli(*args, env=env)
        line = one_error_line(done, 1)
        assert line.startswith(f"error: cannot reach Redis at redis://:**@127.0.0.1:{port}/0 (")
        assert "Connection refused" in line
        assert PASSWORD not in done.stdout + done.stderr
    submit = run_cli("submit", "map-reduce", "--task", "t", env=env, stdin="a\n")
    assert PASSWORD not in one_error_line(submit, 1)


def test_a_url_that_is_no_url_is_one_usage_error_naming_the_variable_or_the_flag() -> None:
    by_variable = run_cli("status", "0" * 32, env={"ORCHESTRATOR_REDIS_URL": "notaurl"})
    assert one_error_line(by_variable, 2) == (
        "error: ORCHESTRATOR_REDIS_URL: the URL has no scheme; expected one of redis, rediss, "
        "unix, sentinel"
    )
    by_flag = run_cli("--redis-url", "notaurl", "tools", env={**WIDE})
    assert one_error_line(by_flag, 2).startswith("error: --redis-url: the URL has no scheme")


def test_an_invalid_submission_is_a_usage_error_and_an_unknown_run_a_runtime_error(
    worker_env: dict[str, str],
) -> None:
    invalid = run_cli("submit", "map-reduce", "--task", "t", env=worker_env, stdin="")
    assert "items must not be empty" in one_error_line(invalid, 2)
    unknown = run_cli("status", "0" * 32, env=worker_env)
    assert one_error_line(unknown, 1) == f"error: no run with id '{'0' * 32}'"


# --- a closed pipe -------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.Popen[str]:
    """``orchestrator ARGS`` started with ``stdin`` written, its stdout and stderr piped."""
    started = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    assert started.stdin is not None
    started.stdin.write(stdin)
    started.stdin.close()
    return started


def test_events_into_a_pipe_closed_after_one_line_end_quietly(
    client: Client, worker_env: dict[str, str]
) -> None:
    handle = client.map_reduce("t", items(1), scripted("m", latency_ms=60_000), scripted("r"))
    follow = cli("events", handle.id, env=worker_env)
    assert follow.stdout is not None and follow.stderr is not None
    assert json.loads(follow.stdout.readline())["type"] == "RunStart"
    follow.stdout.close()  # as `| head -1` does once it has its line
    # The cancel's events are written to the closed pipe: the command must stop on them.
    handle.cancel()
    assert follow.wait(timeout=60) == 141
    assert follow.stderr.read() == ""


def test_a_result_table_into_a_closed_pipe_ends_quietly(
    client: Client, worker_env: dict[str, str]
) -> None:
    submit = cli("submit", "map-reduce", "--task", "t", env=worker_env, stdin="a\nb\n")
    assert submit.stdout is not None and submit.stderr is not None
    submit.stdout.close()  # nobody reads the table Rich writes once the run has ended
    assert submit.wait(timeout=60) == 141
    assert re.fullmatch(r"run [0-9a-f]{32}\n", submit.stderr.read())


# --- user text, literally ------------------------------------------------------------------


def test_bracketed_items_and_answers_are_shown_literally(
    tmp_path: Path, worker_env: dict[str, str], workers: list[LocalWorker]
) -> None:
    lines = ["- [summariser_0] found [bold]three[/bold] issues", "an item with [/b] in it"]
    done = run_cli(
        "submit",
        "map-reduce",
        "--task",
        "Check",
        env={**worker_env, **WIDE},
        stdin="\n".join(lines),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # The reduced answer repeats each mapper's answer, which repeats its item.
    for line in lines:
        assert f"Process this item: {line}" in done.stdout
    assert "- [mapper_0] " in done.stdout


def loop_id_cells(table: str) -> str:
    """The loop id column of a rendered branches table, its cells joined: a folded id's
    pieces come together again."""
    rows = [line.split("│") for line in table.splitlines() if line.startswith("│")]
    return "".join(row[2].strip() for row in rows)


def test_branch_loop_ids_are_never_cut(
    tmp_path: Path, worker_env: dict[str, str], workers: list[LocalWorker]
) -> None:
    session = uuid4().hex  # 32 digits, as a generated one
    spec = tmp_path / "branches.yaml"
    spec.write_text(
        f"session_id: {session}\nprompt: Which?\n"
        "configs:\n"
        "  - {name: a, config_id: a, model: {provider: scripted, options: {answer: '[/b]'}}}\n"
        "  - {name: b, config_id: b, model: {provider: scripted}}\n"
    )
    # At 80 columns each id is whole on its line, and the answers get the rest.
    done = run_cli("submit", "branches", str(spec), env={**worker_env, "COLUMNS": "80"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{session}.a.1" in done.stdout and f"{session}.b.2" in done.stdout
    assert "[/b]" in done.stdout
    assert max(len(line) for line in done.stdout.splitlines()) <= 80
    # Narrower, they fold: every character is still there.
    narrow = run_cli("submit", "branches", str(spec), env={**worker_env, "COLUMNS": "50"})
    assert narrow.returncode == 0, narrow.stdout + narrow.stderr
    assert loop_id_cells(narrow.stdout) == f"{session}.a.1{session}.b.2"


def test_long_answers_are_cut_between_words() -> None:
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima"
    result = MapReduceResult(
        task="t",
        map_outputs=[AgentOutput(name="m_0", answer=words, outcome="ok")],
        reduced_answer="",
    )
    for tail, shown in ((False, "alpha bravo charlie delta…"), (True, "…india juliet kilo lima")):
        out = StringIO()
        Console(file=out, width=200).print(outputs_table(result, answer_chars=27, tail=tail))
        assert shown in out.getvalue(), out.getvalue()


# --- smaller messages ----------------------------------------------------------------------


def test_learn_counts_what_the_learners_take_and_names_each_line_it_skips(
    worker_env: dict[str, str],
) -> None:
    good = {
        "run_id": "r",
        "agent_name": "a",
        "agent_id": "cli-learn",
        "started_at": "2024-01-01T00:00:00Z",
    }
    lines = [json.dumps(good), json.dumps({"run_id": "r"}), json.dumps({**good, "calls": 3})]
    done = run_cli("learn", "-", env=worker_env, stdin="\n".join(lines))
    assert done.returncode == 1
    assert done.stdout == "sent 1 valid record to the learners; skipped 2 lines (listed above)\n"
    skipped = done.stderr.splitlines()
    assert skipped[0].startswith("line 2: not a run record (agent_name: Field required;")
    assert skipped[1].startswith("line 3: not a run record (calls: Input should be a valid array")


def test_tools_says_why_it_lists_none_and_plans_reset_what_it_found(
    private_redis: LocalRedis,
) -> None:
    env = {"ORCHESTRATOR_REDIS_URL": private_redis.url, **WIDE}
    tools = run_cli("tools", env=env)
    assert tools.returncode == 0 and tools.stdout == ""
    assert tools.stderr == "no tools: no worker is running at this Redis\n"
    reset = run_cli("plans", "reset", "nobody", env=env)
    assert reset.returncode == 0 and reset.stdout == "nobody had no plan\n"
