"""What a client submits names no other Redis key, does not rewrite the request a worker sends
with its key, and is shown in the terminal as plain text (see docs/operate/security.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from orchestrator import Client, InvalidRunError, Message, ModelConfig, RunNotFoundError
from orchestrator.config.settings import Settings
from orchestrator.local import LocalWorker
from orchestrator.models import REQUEST_OPTIONS
from tests.helpers import items, local_endpoints, run_cli, scripted, wait_for
from tests.learning.test_learner_logic import record
from tests.servers.fake_api import FakeAPI
from workers.execution.cancellation import CancelToken
from workers.providers import get_provider

# --- Redis key names -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "m", "agent_id": "victim:version"},
        {"name": "victim:seen"},  # the agent id defaults to the name
        {"name": "m", "agent_id": "two\nlines"},
    ],
)
def test_an_agent_id_that_names_other_keys_is_refused_at_submit(
    client: Client, spec: dict[str, Any]
) -> None:
    with pytest.raises(InvalidRunError, match=r"mapper: .*agent_id .* names Redis keys"):
        client.map_reduce("t", items(1), spec, scripted("r"))


def test_no_plan_is_read_or_reset_under_an_agent_id_that_names_other_keys(
    client: Client,
) -> None:
    with pytest.raises(InvalidRunError, match="names Redis keys"):
        client.plan("victim:version")
    with pytest.raises(InvalidRunError, match="names Redis keys"):
        client.reset_plan("victim:version")


def test_a_record_whose_agent_id_names_another_agents_keys_is_rejected_by_the_learners(
    client: Client,
) -> None:
    victim, marker = f"victim-{uuid4().hex[:8]}", f"marker-{uuid4().hex[:8]}"
    client.send_records([record(("a", 0, 2), ("b", 1, 3), agent=victim).model_dump(mode="json")])
    wait_for(lambda: client.plans.version(victim) == 1, "the victim's plan was learned")
    rejected_before, _ = client.plans.rejected()
    # Sent as raw JSON, as `orchestrator learn` and other frameworks send records: only the
    # learners validate it. It would write a plan into the victim's version key.
    poisoned = record(("c", 0, 2), ("d", 1, 3)).model_dump(mode="json")
    poisoned["agent_id"] = f"{victim}:version"
    fine = record(("e", 0, 2), ("f", 1, 3), agent=marker).model_dump(mode="json")
    client.send_records([poisoned, fine])
    wait_for(lambda: client.plan(marker) is not None, "the learner took the batch")
    assert client.plans.version(victim) == 1
    plan = client.plan(victim)
    assert plan is not None and [g.tool_names for g in plan.parallel_groups] == [["a", "b"]]
    rejected, reason = client.plans.rejected()
    assert rejected == rejected_before + 1 and "record 0: agent_id" in reason


def test_a_run_id_that_is_not_one_names_no_run_and_no_key_of_one(
    client: Client, worker_env: dict[str, str]
) -> None:
    handle = client.map_reduce("t", items(2), scripted("m"), scripted("r"))
    handle.result(timeout=30)
    for other in (f"{handle.id}:items", f"{handle.id}:budget", "*", ""):
        with pytest.raises(RunNotFoundError, match="no run with id"):
            client.get_run(other)
    done = run_cli("status", f"{handle.id}:items", env=worker_env)
    assert done.returncode == 1 and "no run with id" in done.stderr, done.stderr
    assert client.get_run(handle.id).status().state == "succeeded"


# --- the request a worker sends with its key -----------------------------------------------


@pytest.mark.parametrize("option", sorted(REQUEST_OPTIONS))
def test_options_that_rewrite_the_request_are_refused_at_submit(
    client: Client, option: str
) -> None:
    mapper = {"name": "m", "model": {"provider": "openai", "options": {option: {"x": "y"}}}}
    with pytest.raises(InvalidRunError, match=f"mapper.model.options: .*{option} cannot be"):
        client.map_reduce("t", items(1), mapper, scripted("r"))


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAPI]:
    server = FakeAPI()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-operators-key")
    monkeypatch.setenv("ORCHESTRATOR_ENDPOINTS", local_endpoints(server.port))
    yield server
    server.close()


def test_a_worker_sends_no_client_chosen_model_tools_header_query_or_body_field(
    api: FakeAPI,
) -> None:
    api.reply(
        {
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": "cheap",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )
    # Options that slipped past validation (built without it): the worker drops them.
    config = ModelConfig.model_construct(
        provider="openai",
        model="cheap",
        endpoint="test-openai",
        context_window=128_000,
        options={
            "model": "expensive",
            "extra_headers": {"OpenAI-Project": "someone-elses"},
            "extra_query": {"leak": "1"},
            "extra_body": {"model": "expensive"},
            "tools": [{"type": "mcp", "server_url": "https://example.invalid/mcp"}],
            "previous_response_id": "resp_of_someone_else",
            "temperature": 0.5,
        },
    )
    messages = [Message(role="user", content="hi")]
    assert (
        get_provider("openai", Settings()).complete(config, messages, CancelToken(), []).text
        == "hi"
    )
    ((path, headers, body),) = api.requests
    assert path == "/v1/chat/completions"
    assert body["model"] == "cheap" and body["temperature"] == 0.5
    assert not {"tools", "previous_response_id"} & body.keys()
    assert "openai-project" not in headers


# --- the terminal --------------------------------------------------------------------------

MARKUP = "[bold]x[/bold] [link=https://example.invalid]y[/link] [/] \x1b[2J"
SHOWN = MARKUP.replace("\x1b", "\\x1b")  # as the terminal shows it: escaped, inert


def test_the_cli_shows_names_and_answers_as_plain_text(
    worker_env: dict[str, str], workers: list[LocalWorker]
) -> None:
    mapper = {"name": "m[/]", "model": {"provider": "scripted", "options": {"answer": MARKUP}}}
    reducer = {"name": "r", "model": {"provider": "scripted", "options": {"answer": MARKUP}}}
    done = run_cli(
        "submit",
        "map-reduce",
        "--task",
        "t",
        "--mapper",
        json.dumps(mapper),
        "--reducer",
        json.dumps(reducer),
        env={**worker_env, "COLUMNS": "200"},
        stdin="a\n",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "m[/]_0" in done.stdout
    assert done.stdout.count(SHOWN) == 2  # the mapper's answer in the table, and the reducer's
    assert "\x1b" not in done.stdout  # no escape sequence reaches the terminal


def test_the_cli_shows_a_cancel_reason_as_plain_text(
    client: Client, worker_env: dict[str, str]
) -> None:
    handle = client.map_reduce("t", items(1), scripted("m", latency_ms=60_000), scripted("r"))
    assert handle.cancel(MARKUP)
    handle.wait(timeout=30)
    done = run_cli("status", handle.id, env={**worker_env, "COLUMNS": "200"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"cancel: {SHOWN}" in done.stdout
    assert "\x1b" not in done.stdout


# --- the broker ----------------------------------------------------------------------------


def test_a_pickled_task_is_refused_unread(
    worker_env: dict[str, str], workers: list[LocalWorker], log_dir: Path
) -> None:
    from celery import Celery

    from orchestrator.config.celery_config import celery_config
    from orchestrator.config.settings import load_settings

    sender = Celery("pickler", set_as_current=False)
    sender.conf.update(celery_config(load_settings()))
    sender.conf.update(task_serializer="pickle", accept_content=["json", "pickle"])
    refusal = (
        "Received invalid task message: Refusing to deserialize untrusted content of type pickle"
    )

    def logs() -> str:
        return "".join(path.read_text() for path in log_dir.glob("*.log"))

    before = logs().count(refusal)
    task_id = uuid4().hex
    sender.send_task("tasks.diagnostics.noop", task_id=task_id, queue="agents")
    wait_for(lambda: logs().count(refusal) > before, "a worker refused the message")
    assert f"tasks.diagnostics.noop[{task_id}] received" not in logs()
    assert sender.AsyncResult(task_id).state == "PENDING"  # it never ran
