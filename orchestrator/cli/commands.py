"""What the ``orchestrator`` commands that talk to a run do once the client is made: submit,
events, plans, learn, tools."""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from orchestrator.cli.input import (
    agent_spec,
    read_branches_file,
    read_items,
    read_records,
    read_text,
    reducer_of,
)
from orchestrator.cli.render import plain
from orchestrator.client import Client
from orchestrator.errors import InvalidRunError
from orchestrator.tools import McpServerInfo


def submit_map_reduce(args: argparse.Namespace, client: Client, out: Console) -> int:
    from orchestrator.cli.progress import follow_with_progress
    from orchestrator.cli.render import outputs_table, print_status

    budget = {
        "max_agents": args.max_agents,
        "max_tokens": args.max_tokens,
        "max_cost_usd": args.max_cost_usd,
    }
    mapper = agent_spec("--mapper", args.mapper)
    reducer = reducer_of(args.reducer)
    handle = client.map_reduce(
        args.task,
        read_items(args.items, args.jsonl),
        mapper,
        reducer,
        max_concurrent=args.max_concurrent,
        budget=budget,
        deadline_s=args.deadline_s,
        group=args.group,
    )
    if args.no_wait:
        print(handle.id)
        return 0
    err = Console(stderr=True)
    err.print(f"run {handle.id}")
    status = follow_with_progress(handle, err) if err.is_terminal else handle.wait(args.timeout)
    result = handle.result(timeout=args.timeout)
    if args.output == "json":
        print(
            json.dumps(
                {"run_id": handle.id, "state": status.state, **result.model_dump(mode="json")}
            )
        )
    else:
        out.print(outputs_table(result))
        out.print(plain(result.reduced_answer))
        print_status(out, status)
    return 0 if status.state == "succeeded" else 1


def submit_branches(args: argparse.Namespace, client: Client, out: Console) -> int:
    from orchestrator.cli.render import branches_table, print_status

    submission = read_branches_file(args.file)
    if args.group is not None:
        submission["group"] = args.group
    try:
        handle = client.parallel_branches(**submission)
    except InvalidRunError as invalid:
        # The client names the field (configs.0.model.provider); the user needs the file too.
        raise InvalidRunError(f"{args.file}: {invalid}") from None
    if args.no_wait:
        print(handle.id)
        return 0
    status = handle.wait(args.timeout)
    result = handle.result() if status.state != "failed" else None
    if args.output == "json":
        body = result.model_dump(mode="json") if result else {"error": status.error}
        print(json.dumps({"run_id": handle.id, "state": status.state, **body}))
    else:
        if result is not None:
            out.print(branches_table(result, width=out.width))
        print_status(out, status)
    return 0 if status.state == "succeeded" else 1


def print_events(args: argparse.Namespace, client: Client) -> int:
    for event in client.get_run(args.run_id).events(follow=not args.no_follow):
        print(event.model_dump_json(), flush=True)
    return 0


def plans(args: argparse.Namespace, client: Client, out: Console) -> int:
    if args.action == "reset":
        had = client.reset_plan(args.agent_id)
        print(f"reset the plan of {args.agent_id}" if had else f"{args.agent_id} had no plan")
        return 0
    plan = client.plan(args.agent_id)
    if plan is None:
        Console(stderr=True).print(plain(f"{args.agent_id} has no plan yet"))
        return 1
    if args.output == "json":
        print(plan.model_dump_json())
        return 0
    # Plans are learned from run records, which anyone who reaches the learners may send.
    out.print(
        plain(
            f"plan of {plan.agent_id}: version {plan.version}, {plan.records_seen} records "
            f"seen, last run {plan.metadata_template.run_id}"
        )
    )
    for group in plan.parallel_groups:
        out.print(plain(f"  {group.group_id}: {', '.join(group.tool_names)}"))
    for hint in plan.metadata_template.parallel_hints:
        origin = "explicit" if hint.explicit else "learned"
        out.print(plain(f"  hint: {hint.tool_name} in {hint.group_id} ({origin})"))
    return 0


def learn(args: argparse.Namespace, client: Client) -> int:
    # Records are checked here with the model the learners use, so that the count printed is
    # what they take: a learner's rejection would otherwise show in its worker's log only.
    records, skipped = read_records(read_text("learn", args.file))
    err = Console(stderr=True)
    for reason in skipped:
        err.print(plain(reason), soft_wrap=True)
    for start in range(0, len(records), 100):
        client.send_records(records[start : start + 100])
    noun = "record" if len(records) == 1 else "records"
    print(
        f"sent {len(records)} valid {noun} to the learners"
        + (f"; skipped {len(skipped)} lines (listed above)" if skipped else "")
    )
    return 0 if not skipped else 1


def tools(client: Client) -> int:
    served = client.tools()
    if not served:
        # stdout stays one line per tool for scripts; the explanation goes to stderr.
        why = (
            "no live worker serves any tool (workers serve the @tool functions of the modules "
            "in their ORCHESTRATOR_TOOL_MODULES and the tools of their ORCHESTRATOR_MCP_SERVERS)"
            if client.workers()
            else "no worker is running at this Redis"
        )
        Console(stderr=True).print(f"no tools: {why}", soft_wrap=True)
    for info in served:
        where = "remote" if info.remote else "local"
        limit = f", at most {info.max_concurrency} at once" if info.max_concurrency else ""
        summary = info.description.splitlines()[0] if info.description else ""
        print(f"{info.name} ({where}{limit}): {summary}")
    for line in server_lines(client.mcp_servers()):
        print(line)
    return 0


def server_lines(by_worker: dict[str, list[McpServerInfo]]) -> list[str]:
    """``mcp files (stdio): up, 4 tools, on w1@h, w2@h`` and, for each reason a server is down,
    ``mcp search (http): DOWN on w1@h: <why>``; sorted by server name."""
    states: dict[tuple[str, str], dict[tuple[bool, str, int], list[str]]] = {}
    for worker, servers in by_worker.items():
        for server in servers:
            where = states.setdefault((server.name, server.transport), {})
            where.setdefault((server.up, server.error, server.tools), []).append(worker)
    lines = []
    for (name, transport), by_state in sorted(states.items()):
        for (up, error, tools), workers in sorted(by_state.items(), reverse=True):
            on = ", ".join(sorted(workers))
            if up:
                noun = "tool" if tools == 1 else "tools"
                lines.append(f"mcp {name} ({transport}): up, {tools} {noun}, on {on}")
            else:
                lines.append(f"mcp {name} ({transport}): DOWN on {on}: {error}")
    return lines
