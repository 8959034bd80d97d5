"""The ``orchestrator`` command: demo, worker, submit, status, events, cancel."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import NoReturn

from rich.console import Console

from orchestrator.cli.errors import (
    CLOSED_PIPE_EXIT,
    INTERRUPTED_EXIT,
    RUNTIME_ERRORS,
    USAGE_EXIT,
    UsageError,
    exit_code,
    print_error,
    print_error_line,
    require_redis,
)
from orchestrator.cli.input import (
    agent_spec,
    read_branches_file,
    read_items,
    read_records,
    read_text,
)
from orchestrator.cli.launcher import DEFAULT_THREADS, default_processes, exec_worker, run_workers
from orchestrator.cli.render import plain
from orchestrator.client import Client
from orchestrator.config.celery_config import QUEUES
from orchestrator.config.settings import (
    ENV_PREFIX,
    InvalidSettingsError,
    Settings,
    load_settings,
    with_redis_url,
)
from orchestrator.errors import InvalidRunError

DEFAULT_MAPPER = '{"name": "mapper", "model": {"provider": "scripted"}}'
DEFAULT_REDUCER = '{"name": "reducer", "model": {"provider": "scripted"}}'


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as the CLI's others: one ``error:`` line, exit code 2.
    Subcommand parsers are made of the same class."""

    def error(self, message: str) -> NoReturn:
        print_error_line(f"{message} (see {self.prog} --help)")
        sys.exit(USAGE_EXIT)


class _Stdout(Console):
    """The console of stdout. Rich ends the process with exit code 1 when the reader of a
    pipe goes away; this raises the ``BrokenPipeError`` instead, for ``main`` to handle as it
    does ``print``'s."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="orchestrator", description="Run LLM-agent work on Celery workers.")
    parser.add_argument("--redis-url", help="Redis of run state (default: ORCHESTRATOR_REDIS_URL)")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run a sample map-reduce on local workers")
    demo.add_argument("--workers", type=int, default=2, help="local worker processes to start")
    demo.add_argument("--max-concurrent", type=int, default=4, help="mapper agents running at once")

    worker = commands.add_parser(
        "worker",
        help="start Celery workers: one process per core, 500 threads each "
        "(extra arguments go to celery worker)",
    )
    worker.add_argument(
        "--queues", "-Q", default=",".join(QUEUES), help="comma-separated queues to consume"
    )
    worker.add_argument("--pool", "-P", default="threads", help="Celery execution pool")
    worker.add_argument(
        "--concurrency", "-c", type=int, default=DEFAULT_THREADS, help="threads per process"
    )
    worker.add_argument(
        "--processes",
        type=int,
        default=None,
        help="worker processes (default: one per core); 1 runs celery in this process",
    )
    worker.add_argument("--loglevel", "-l", default="INFO", help="Celery log level")

    submit = commands.add_parser("submit", help="submit a run")
    kinds = submit.add_subparsers(dest="kind", required=True)
    mr = kinds.add_parser("map-reduce", help="one mapper agent per item, then a reducer")
    mr.add_argument("--task", required=True, help="the task every mapper and the reducer get")
    mr.add_argument("--items", default="-", help="file of items (JSON list or lines); - = stdin")
    mr.add_argument("--mapper", default=DEFAULT_MAPPER, help="AgentSpec JSON or @file")
    mr.add_argument("--reducer", default=DEFAULT_REDUCER, help="AgentSpec JSON or @file")
    mr.add_argument(
        "--max-concurrent", type=int, default=5, help="mappers running at once, all workers"
    )
    mr.add_argument("--max-agents", type=int, help="budget: agents the run may admit")
    mr.add_argument("--max-tokens", type=int, help="budget: tokens its model calls may use")
    mr.add_argument(
        "--max-cost-usd", type=float, help="budget: USD its model calls may cost (known prices)"
    )
    mr.add_argument(
        "--deadline-s", type=float, help="seconds from submission, then the run is cancelled"
    )
    mr.add_argument("--group", help="the concurrency group whose limit the run shares")
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
    branches.add_argument(
        "--group", help="the concurrency group whose limit the run shares (wins over the file's)"
    )
    branches.add_argument("--no-wait", action="store_true", help="print the run id and return")
    branches.add_argument("--output", choices=("table", "json"), default="table")
    branches.add_argument("--timeout", type=float, help="seconds to wait for the result")

    status = commands.add_parser("status", help="show a run's state and counts")
    status.add_argument("run_id", help="the run's id (printed by submit)")
    status.add_argument("--output", choices=("table", "json"), default="table")

    commands.add_parser("tools", help="list the tools the workers serve")

    plans = commands.add_parser("plans", help="show or reset what the learners learned")
    plan_actions = plans.add_subparsers(dest="action", required=True)
    show = plan_actions.add_parser("show", help="an agent's plan: groups, hints, version")
    show.add_argument("agent_id", help="the AgentSpec's agent_id (default: its name)")
    show.add_argument("--output", choices=("table", "json"), default="table")
    plan_actions.add_parser("reset", help="forget an agent's plan").add_argument(
        "agent_id", help="the AgentSpec's agent_id (default: its name)"
    )

    cache = commands.add_parser("cache", help="show or reset what the cache learner learned")
    cache_actions = cache.add_subparsers(dest="action", required=True)
    cache_show = cache_actions.add_parser(
        "show", help="an agent's cache profiles: stable prefix, reuse, breakpoints it would get"
    )
    cache_show.add_argument("agent_id", help="the AgentSpec's agent_id (default: its name)")
    cache_show.add_argument("--output", choices=("table", "json"), default="table")
    cache_actions.add_parser("reset", help="forget an agent's cache plan").add_argument(
        "agent_id", help="the AgentSpec's agent_id (default: its name)"
    )

    learn = commands.add_parser("learn", help="feed run records (JSON lines) to the learners")
    learn.add_argument("file", help="a .jsonl file of RunRecords; - for stdin")

    events = commands.add_parser("events", help="print a run's events as JSON lines, live")
    events.add_argument("run_id", help="the run's id (printed by submit)")
    events.add_argument("--no-follow", action="store_true", help="print what is there and stop")

    cancel = commands.add_parser("cancel", help="cancel a run")
    cancel.add_argument("run_id", help="the run's id (printed by submit)")

    # watch, runs: the live run view and the recent runs (all their logic: watch_cli.py).
    from orchestrator.cli.watch_commands import add_commands as add_watch_commands

    add_watch_commands(commands)
    return parser


def _worker(args: argparse.Namespace, extra: list[str]) -> int:
    if args.redis_url:
        os.environ["ORCHESTRATOR_REDIS_URL"] = args.redis_url
    queues = args.queues.split(",")
    processes = args.processes or default_processes()
    if processes < 1 or args.concurrency < 1:
        raise UsageError("--processes and --concurrency must be at least 1")
    extra = ["-l", args.loglevel, *extra]
    if processes == 1:
        exec_worker(queues, args.pool, args.concurrency, extra)
    return run_workers(processes, queues, args.pool, args.concurrency, extra)


def _submit_map_reduce(args: argparse.Namespace, client: Client, out: Console) -> int:
    from orchestrator.cli.progress import follow_with_progress
    from orchestrator.cli.render import outputs_table, print_status

    budget = {
        "max_agents": args.max_agents,
        "max_tokens": args.max_tokens,
        "max_cost_usd": args.max_cost_usd,
    }
    mapper = agent_spec("--mapper", args.mapper)
    reducer = agent_spec("--reducer", args.reducer)
    handle = client.map_reduce(
        args.task,
        read_items(args.items),
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


def _submit_branches(args: argparse.Namespace, client: Client, out: Console) -> int:
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


def _tools(client: Client) -> int:
    served = client.tools()
    if not served:
        # stdout stays one line per tool for scripts; the explanation goes to stderr.
        why = (
            "no live worker serves any tool (workers serve the @tool functions of the modules "
            "in their ORCHESTRATOR_TOOL_MODULES)"
            if client.workers()
            else "no worker is running at this Redis"
        )
        Console(stderr=True).print(f"no tools: {why}", soft_wrap=True)
    for info in served:
        where = "remote" if info.remote else "local"
        limit = f", at most {info.max_concurrency} at once" if info.max_concurrency else ""
        summary = info.description.splitlines()[0] if info.description else ""
        print(f"{info.name} ({where}{limit}): {summary}")
    return 0


def _settings(redis_url: str | None) -> Settings:
    """The environment's settings, with ``--redis-url`` when given; a bad flag is named as
    the flag, not as the variable it stands for."""
    settings = load_settings()
    if not redis_url:
        return settings
    try:
        return with_redis_url(settings, redis_url)
    except InvalidSettingsError as invalid:
        reason = str(invalid).removeprefix(f"{ENV_PREFIX}REDIS_URL: ")
        raise UsageError(f"--redis-url: {reason}") from None


def _run(args: argparse.Namespace, out: Console) -> int:
    if args.command == "demo":
        from orchestrator.cli.demo import run_demo

        if args.redis_url:
            os.environ["ORCHESTRATOR_REDIS_URL"] = args.redis_url
            from orchestrator.config.settings import get_settings

            get_settings.cache_clear()
        return run_demo(out, worker_count=args.workers, max_concurrent=args.max_concurrent)
    client = Client(settings=_settings(args.redis_url))
    found = client.settings
    password = found.sentinel_password.get_secret_value() if found.sentinel_password else None
    require_redis(
        found.redis_url, sentinel_master=found.sentinel_master, sentinel_password=password
    )
    if args.command in ("watch", "runs"):  # the live run view and the recent runs
        from orchestrator.cli.watch_commands import run_command

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
        from orchestrator.cli.cache_view import cache_command

        return cache_command(args, client, out)
    if args.command == "learn":
        return _learn(args, client)
    if args.command == "tools":
        return _tools(client)
    handle = client.get_run(args.run_id)
    if args.command == "status":
        from orchestrator.cli.render import print_status

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


def main(argv: list[str] | None = None) -> int:
    """The console script's entry point; returns the exit code."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "worker":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "worker":
        return _worker(args, extra)
    try:
        return _run(args, _Stdout())
    except BrokenPipeError:
        # The reader went away (``| head -1``): nothing is wrong and nobody reads an error.
        # Point stdout at /dev/null so that the flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return CLOSED_PIPE_EXIT
    except KeyboardInterrupt:
        return INTERRUPTED_EXIT
    except RUNTIME_ERRORS as error:
        print_error(error, [args.redis_url])
        return exit_code(error)
