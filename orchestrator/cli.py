"""The ``orchestrator`` command: demo, worker, submit, status, events, cancel."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import redis
import yaml
from kombu.exceptions import OperationalError
from rich.console import Console
from rich.text import Text

from orchestrator.celery_config import QUEUES
from orchestrator.client import Client
from orchestrator.errors import OrchestratorError
from orchestrator.local import worker_command
from orchestrator.models import AgentSpec
from orchestrator.render import plain
from orchestrator.settings import ENV_PREFIX, URL_FIELDS, url_passwords

DEFAULT_MAPPER = {"name": "mapper", "model": {"provider": "scripted"}}
DEFAULT_REDUCER = {"name": "reducer", "model": {"provider": "scripted"}}
# What a command may meet besides its own errors: bad input, files, an unreachable or
# misconfigured Redis or broker. Each is one ``error:`` line, never a traceback (a traceback
# shows the values of the failing call's arguments in pydantic's errors).
EXPECTED_ERRORS = (
    OrchestratorError,
    ValueError,
    OSError,
    yaml.YAMLError,
    redis.RedisError,
    OperationalError,
)


def _json_arg(text: str) -> Any:
    """A JSON value given inline or as ``@path``."""
    source = Path(text[1:]).read_text() if text.startswith("@") else text
    return json.loads(source)


def read_items(source: str) -> list[str]:
    """Items from a file (or ``-`` for stdin): a JSON list of strings, or one item per line."""
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    stripped = text.strip()
    if stripped.startswith("["):
        items = json.loads(stripped)
        return [item if isinstance(item, str) else json.dumps(item) for item in items]
    return [line for line in (raw.strip() for raw in text.splitlines()) if line]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator", description="Run LLM-agent work on Celery workers."
    )
    parser.add_argument("--redis-url", help="Redis of run state (default: ORCHESTRATOR_REDIS_URL)")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run a sample map-reduce on local workers")
    demo.add_argument("--workers", type=int, default=2)
    demo.add_argument("--max-concurrent", type=int, default=4)

    worker = commands.add_parser(
        "worker", help="start a Celery worker (extra arguments go to celery worker)"
    )
    worker.add_argument("--queues", "-Q", default=",".join(QUEUES))
    worker.add_argument("--pool", "-P", default="threads")
    worker.add_argument("--concurrency", "-c", type=int, default=16)
    worker.add_argument("--loglevel", "-l", default="INFO")

    submit = commands.add_parser("submit", help="submit a run")
    kinds = submit.add_subparsers(dest="kind", required=True)
    mr = kinds.add_parser("map-reduce", help="one mapper agent per item, then a reducer")
    mr.add_argument("--task", required=True, help="the task every mapper and the reducer get")
    mr.add_argument("--items", default="-", help="file of items (JSON list or lines); - = stdin")
    mr.add_argument(
        "--mapper", type=_json_arg, default=DEFAULT_MAPPER, help="AgentSpec JSON or @file"
    )
    mr.add_argument(
        "--reducer", type=_json_arg, default=DEFAULT_REDUCER, help="AgentSpec JSON or @file"
    )
    mr.add_argument("--max-concurrent", type=int, default=5)
    mr.add_argument("--max-agents", type=int)
    mr.add_argument("--max-tokens", type=int)
    mr.add_argument("--max-cost-usd", type=float)
    mr.add_argument("--deadline-s", type=float)
    mr.add_argument("--no-wait", action="store_true", help="print the run id and return")
    mr.add_argument("--output", choices=("table", "json"), default="table")
    mr.add_argument("--timeout", type=float, help="seconds to wait for the result")

    branches = kinds.add_parser(
        "branches", help="N agent configs from one context, then a strategy picks one"
    )
    branches.add_argument(
        "file",
        help="JSON or YAML: configs, prompt, base_context, strategy, judge, session_id, "
        "max_concurrent, budget, deadline_s",
    )
    branches.add_argument("--no-wait", action="store_true", help="print the run id and return")
    branches.add_argument("--output", choices=("table", "json"), default="table")
    branches.add_argument("--timeout", type=float, help="seconds to wait for the result")

    status = commands.add_parser("status", help="show a run's state and counts")
    status.add_argument("run_id")
    status.add_argument("--output", choices=("table", "json"), default="table")

    commands.add_parser("tools", help="list the tools the workers serve")

    plans = commands.add_parser("plans", help="show or reset what the learners learned")
    plan_actions = plans.add_subparsers(dest="action", required=True)
    show = plan_actions.add_parser("show", help="an agent's plan: groups, hints, version")
    show.add_argument("agent_id")
    show.add_argument("--output", choices=("table", "json"), default="table")
    plan_actions.add_parser("reset", help="forget an agent's plan").add_argument("agent_id")

    cache = commands.add_parser("cache", help="show or reset what the cache learner learned")
    cache_actions = cache.add_subparsers(dest="action", required=True)
    cache_show = cache_actions.add_parser(
        "show", help="an agent's cache profiles: stable prefix, reuse, breakpoints it would get"
    )
    cache_show.add_argument("agent_id")
    cache_show.add_argument("--output", choices=("table", "json"), default="table")
    cache_actions.add_parser("reset", help="forget an agent's cache plan").add_argument("agent_id")

    learn = commands.add_parser("learn", help="feed run records (JSON lines) to the learners")
    learn.add_argument("file", help="a .jsonl file of RunRecords; - for stdin")

    events = commands.add_parser("events", help="print a run's events as JSON lines, live")
    events.add_argument("run_id")
    events.add_argument("--no-follow", action="store_true", help="print what is there and stop")

    cancel = commands.add_parser("cancel", help="cancel a run")
    cancel.add_argument("run_id")

    # watch, runs: the live run view and the recent runs (all their logic: watch_cli.py).
    from orchestrator.watch_cli import add_commands as add_watch_commands

    add_watch_commands(commands)
    return parser


def _worker(args: argparse.Namespace, extra: list[str]) -> int:
    if args.redis_url:
        os.environ["ORCHESTRATOR_REDIS_URL"] = args.redis_url
    queues = args.queues.split(",")
    command = worker_command(queues, args.pool, args.concurrency, ["-l", args.loglevel, *extra])
    os.execv(sys.executable, command)
    return 0  # not reached: exec replaces this process


def _submit_map_reduce(args: argparse.Namespace, client: Client, out: Console) -> int:
    from orchestrator.progress import follow_with_progress
    from orchestrator.render import outputs_table, print_status

    budget = {
        "max_agents": args.max_agents,
        "max_tokens": args.max_tokens,
        "max_cost_usd": args.max_cost_usd,
    }
    handle = client.map_reduce(
        args.task,
        read_items(args.items),
        AgentSpec.model_validate(args.mapper),
        AgentSpec.model_validate(args.reducer),
        max_concurrent=args.max_concurrent,
        budget=budget,
        deadline_s=args.deadline_s,
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


def read_branches_file(path: str) -> dict[str, Any]:
    """A branches submission from a JSON or YAML file (YAML is a superset of JSON)."""
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict):
        raise OrchestratorError(f"{path} must hold a mapping with at least 'configs'")
    return data


def _submit_branches(args: argparse.Namespace, client: Client, out: Console) -> int:
    from orchestrator.render import branches_table, print_status

    handle = client.parallel_branches(**read_branches_file(args.file))
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
            out.print(branches_table(result))
        print_status(out, status)
    return 0 if status.state == "succeeded" else 1


def _events(args: argparse.Namespace, client: Client) -> int:
    for event in client.get_run(args.run_id).events(follow=not args.no_follow):
        print(event.model_dump_json(), flush=True)
    return 0


def _plans(args: argparse.Namespace, client: Client, out: Console) -> int:
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


def _learn(args: argparse.Namespace, client: Client) -> int:
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    records: list[Any] = []
    unreadable = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            unreadable += 1
            Console(stderr=True).print(plain(f"line {number}: not JSON ({error.msg}), skipped"))
    for start in range(0, len(records), 100):
        client.send_records(records[start : start + 100])
    print(f"sent {len(records)} records to the learners ({unreadable} lines were not JSON)")
    return 0 if not unreadable else 1


def _run(args: argparse.Namespace, out: Console) -> int:
    if args.command == "demo":
        from orchestrator.demo import run_demo

        if args.redis_url:
            os.environ["ORCHESTRATOR_REDIS_URL"] = args.redis_url
            from orchestrator.settings import get_settings

            get_settings.cache_clear()
        return run_demo(out, worker_count=args.workers, max_concurrent=args.max_concurrent)
    client = Client(redis_url=args.redis_url)
    if args.command in ("watch", "runs"):  # the live run view and the recent runs
        from orchestrator.watch_cli import run_command

        return run_command(args, client, out)
    if args.command == "submit" and args.kind == "branches":
        return _submit_branches(args, client, out)
    if args.command == "submit":
        return _submit_map_reduce(args, client, out)
    if args.command == "events":
        return _events(args, client)
    if args.command == "plans":
        return _plans(args, client, out)
    if args.command == "cache":
        from orchestrator.cache_view import cache_command

        return cache_command(args, client, out)
    if args.command == "learn":
        return _learn(args, client)
    if args.command == "tools":
        for info in client.tools():
            where = "remote" if info.remote else "local"
            limit = f", at most {info.max_concurrency} at once" if info.max_concurrency else ""
            summary = info.description.splitlines()[0] if info.description else ""
            print(f"{info.name} ({where}{limit}): {summary}")
        return 0
    handle = client.get_run(args.run_id)
    if args.command == "status":
        from orchestrator.render import print_status

        status = handle.status()
        if args.output == "json":
            print(status.model_dump_json())
        else:
            print_status(out, status)
        return 0
    flagged = handle.cancel()
    print(
        f"cancel requested for run {handle.id}" if flagged else f"run {handle.id} had already ended"
    )
    return 0


def print_error(error: Exception, redis_url: str | None) -> None:
    """``error: <message>`` on one line of stderr, with every password of the configured URLs
    (and of ``--redis-url``) masked, should a library repeat one."""
    text = (
        str(error) if isinstance(error, OrchestratorError) else f"{type(error).__name__}: {error}"
    )
    configured = [os.environ.get(f"{ENV_PREFIX}{field.upper()}") for field in URL_FIELDS]
    for password in sorted(url_passwords([redis_url, *configured]), key=len, reverse=True):
        text = text.replace(password, "**")
    line = Text.assemble(("error:", "red"), " ", plain(" ".join(text.split())))
    Console(stderr=True).print(line, soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    """The console script's entry point; returns the exit code."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "worker":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "worker":
        return _worker(args, extra)
    try:
        return _run(args, Console())
    except EXPECTED_ERRORS as error:
        print_error(error, args.redis_url)
        return 1


if __name__ == "__main__":
    sys.exit(main())
