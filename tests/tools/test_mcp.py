"""MCP servers as tool sources on real workers (``tests/tools/mcp_setup.py``): their tools listed
with their schemas, called from a scripted turn and from a model turn over the OpenAI wire,
results in call order, a timeout that cuts a slow tool and cancels it on the server, a shared
limit across workers, a dead server reported while the worker keeps serving, and the HTTP
server's token kept out of everything a run leaves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis

from orchestrator import AgentSpec, ModelConfig
from orchestrator.models.outputs import ToolCall
from orchestrator.state.events import AgentStart, ToolCallEnd
from orchestrator.tools import ToolInfo
from tests.helpers import items, run_cli
from tests.tools.mcp_setup import (
    McpWorkers,
    scripted,
    start,
    stop,
    tool_messages,
    turn,
    wait_for,
)
from workers.providers.base import ModelResponse
from workers.tools.wire_names import restore_names, wire_name

# Worker processes that start MCP servers, then runs against them: slow on a busy machine.
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def mcp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpWorkers]:
    setup, processes = start(tmp_path_factory.mktemp("mcp-logs"))
    yield setup
    stop(setup, processes)


def cli_tools(mcp: McpWorkers) -> str:
    result = run_cli("tools", env={"ORCHESTRATOR_REDIS_URL": mcp.redis.url})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_workers_list_mcp_tools_with_their_schemas_and_their_servers(mcp: McpWorkers) -> None:
    served = {info.name: info for info in mcp.client.tools()}
    assert {"files.read", "files.slow", "fragile.pid", "search.search"} <= set(served)
    assert served["files.read"].parameters["required"] == ["path"]
    assert served["search.search"].description == "Search the index for ``query``."
    assert served["files.read"].max_concurrency == 2
    states = {s.name: s for s in mcp.client.mcp_servers()[mcp.workers[0].hostname]}
    assert states["files"].up and states["search"].up and states["search"].transport == "http"
    assert not states["broken"].up and "it did not start" in states["broken"].error
    listing = cli_tools(mcp)
    assert "files.read (local, at most 2 at once): Read the file at ``path``." in listing
    assert "mcp search (http): up, 2 tools, on " in listing
    assert "mcp broken (stdio): DOWN on " in listing


def test_a_script_calls_mcp_tools_and_gets_their_results_in_call_order(
    mcp: McpWorkers,
) -> None:
    calls = turn(
        ("files.echo", {"text": "slow", "delay_ms": 400}),
        ("search.search", {"query": "cats"}),
        ("add", {"a": 2, "b": 3}),
        ("files.read", {"path": "notes.txt"}),
    )
    names = ["files.echo", "search.search", "add", "files.read"]
    handle = mcp.client.run_agent(scripted([calls, {"text": "done"}], names), "go")
    result = handle.result(60)
    assert tool_messages(result.context) == [
        "slow",
        "3 results for cats",
        "5",
        "contents of notes.txt",
    ]
    ends = [e for e in handle.events(follow=False) if isinstance(e, ToolCallEnd)]
    assert ends[-1].tool == "files.echo" and {e.status for e in ends} == {"ok"}  # slow ends last
    assert result.record is not None
    tools = [(c.kind, c.name, c.status) for c in result.record.calls if c.kind == "tool"]
    assert tools == [("tool", name, "ok") for name in names]


def test_a_model_turn_calls_mcp_tools_over_the_openai_wire(mcp: McpWorkers) -> None:
    api = mcp.api
    # The model calls the tools by the names it was offered (providers refuse a ".").
    calls = [
        {"id": "c1", "type": "function", "function": function("files__read", path="a")},
        {"id": "c2", "type": "function", "function": function("search__search", query="q")},
    ]
    api.reply(chat_reply({"role": "assistant", "content": None, "tool_calls": calls}))
    api.reply(chat_reply({"role": "assistant", "content": "read and searched"}))
    spec = AgentSpec(
        name="reader",
        model=ModelConfig(provider="openai", model="gpt-test", endpoint="fake"),
        tools=["files.read", "search.search"],
    )
    result = mcp.client.run_agent(spec, "read a, search q").result(60)
    assert result.output.answer == "read and searched"
    first, second = (body for _, _, body in api.requests[-2:])
    offered = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert set(offered) == {"files__read", "search__search"}
    assert offered["files__read"]["parameters"]["required"] == ["path"]
    replies = [m["content"] for m in second["messages"] if m["role"] == "tool"]
    assert replies == ["contents of a", "3 results for q"]
    assert result.record is not None
    ran = [c.name for c in result.record.calls if c.kind == "tool"]
    assert ran == ["files.read", "search.search"]


def function(name: str, **arguments: Any) -> dict[str, str]:
    return {"name": name, "arguments": json.dumps(arguments)}


def chat_reply(message: dict[str, Any]) -> dict[str, Any]:
    usage = {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    choice = {"index": 0, "finish_reason": finish, "message": message}
    return {
        "id": "r",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-test",
        "usage": usage,
        "choices": [choice],
    }


def test_a_timeout_cuts_a_slow_mcp_tool_and_cancels_it_on_the_server(mcp: McpWorkers) -> None:
    key = uuid4().hex
    calls = turn(("files.slow", {"key": key, "seconds": 60}), ("files.read", {"path": "b"}))
    spec = scripted([calls, {"text": "moved on"}], ["files.slow", "files.read"], timeout_s=0.5)
    result = mcp.client.run_agent(spec, "go").result(60)
    assert tool_messages(result.context) == [
        "tool 'files.slow' timed out after 0.5 s",
        "contents of b",
    ]
    state = redis.Redis.from_url(mcp.redis.url)
    wait_for(lambda: state.get(f"test:mcp:cancelled:{key}"), "the server's call cancelled")


def test_an_mcp_servers_max_concurrency_holds_across_workers(mcp: McpWorkers) -> None:
    calls = turn(*[("files.tracked", {"key": "mcp-limit", "delay_ms": 150})] * 3)
    mapper = scripted([calls, {"text": "ok"}], ["files.tracked"]).model_copy(update={"name": "m"})
    handle = mcp.client.map_reduce("Track", items(6), mapper, AgentSpec(name="r"), 6)
    assert handle.result(120).all_succeeded()
    ran_on = {e.worker for e in handle.events(follow=False) if isinstance(e, AgentStart)}
    assert len(ran_on) == 2
    state = redis.Redis.from_url(mcp.redis.url)
    assert int(state.get("test:mcp-limit:max") or 0) == 2  # 18 calls on two workers, never 3


def test_a_dead_stdio_server_fails_its_calls_clearly_and_is_started_again(mcp: McpWorkers) -> None:
    key = uuid4().hex
    calls = turn(("fragile.die", {"key": key}), ("add", {"a": 1, "b": 2}))
    result = mcp.client.run_agent(scripted([calls, {"text": "ok"}], ["fragile.die", "add"]), "go")
    died, added = tool_messages(result.result(60).context)
    assert died.startswith("McpServerDown: MCP server 'fragile' is down on this worker: ")
    assert added == "3", "the worker's other tools kept working"
    state = redis.Redis.from_url(mcp.redis.url)
    died_in = state.get(f"test:mcp:died:{key}")
    assert isinstance(died_in, bytes), "the server never died"
    worker, dead = died_in.decode().split(":")

    def restarted() -> bool:
        # Members land on either worker, and hold their slots a while: both workers run some.
        calls = turn(("fragile.pid", {}), ("files.echo", {"text": "x", "delay_ms": 300}))
        mapper = scripted([calls, {"text": "ok"}], ["fragile.pid", "files.echo"])
        mcp.client.map_reduce("Pid", items(8), mapper, AgentSpec(name="r"), 8).result(120)
        seen = {raw.decode() for raw in state.smembers("test:mcp:pids:fragile")}
        return any(p.startswith(f"{worker}:") and p != f"{worker}:{dead}" for p in seen)

    wait_for(restarted, "the dead server's worker serving it from a new process", 180)


def test_a_server_that_stops_answering_is_reported_down_while_the_worker_serves_on(
    mcp: McpWorkers,
) -> None:
    mcp.doomed.kill()
    mcp.doomed.wait()

    def doomed_down_everywhere() -> bool:
        states = [s for servers in mcp.client.mcp_servers().values() for s in servers]
        doomed = [s for s in states if s.name == "doomed"]
        return len(doomed) == 2 and not any(s.up for s in doomed)

    wait_for(doomed_down_everywhere, "the doomed server reported down by both workers")
    assert "mcp doomed (http): DOWN on " in cli_tools(mcp)
    calls = turn(("doomed.search", {"query": "q"}), ("add", {"a": 1, "b": 1}))
    spec = scripted([calls, {"text": "ok"}], ["doomed.search", "add"])
    result = mcp.client.run_agent(spec, "go").result(60)
    failed, added = tool_messages(result.context)
    assert failed.startswith("McpServerDown: MCP server 'doomed' is down on this worker: ")
    assert added == "2"


def test_the_http_servers_token_is_in_no_result_event_record_or_log(mcp: McpWorkers) -> None:
    calls = turn(("search.whoami", {}), ("search.search", {"query": "secrets"}))
    spec = scripted([calls, {"text": "ok"}], ["search.whoami", "search.search"])
    handle = mcp.client.run_agent(spec, "go")
    result = handle.result(60)
    # The server saw the header (its calls work) and echoed it: the run keeps it redacted.
    assert tool_messages(result.context) == ["you sent [redacted]", "3 results for secrets"]
    left = result.model_dump_json() + json.dumps(
        [e.model_dump(mode="json") for e in handle.events(follow=False)]
    )
    left += "".join(path.read_text(errors="replace") for path in Path(mcp.logs).glob("*.log"))
    assert mcp.token not in left


def test_tools_offered_together_never_share_a_wire_name() -> None:
    # ``files.read`` goes out as ``files__read``: a tool named so, and MCP tools whose names
    # differ only where the wire replaces characters, must not be taken for one another.
    names = ["files.read", "files__read", "a.b.c", "a.b__c", "a._b", "a_.b", "a.b c", "a.b_c"]
    offered = [ToolInfo(name=name, description="", parameters={}) for name in names]
    wires = [wire_name(name) for name in names]
    assert len(set(wires)) == len(names), wires
    assert wires[0] == "files__read", "a plain MCP tool keeps its readable wire name"
    calls = [ToolCall(id=str(i), name=wire) for i, wire in enumerate(wires)]
    response = restore_names(ModelResponse(text="", tool_calls=calls), offered)
    assert [call.name for call in response.tool_calls] == names
