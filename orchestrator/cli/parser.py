"""The ``orchestrator`` command's argparse parser: its commands and options (the CLI reference
in the docs is generated from it)."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from orchestrator.cli.errors import USAGE_EXIT, print_error_line
from orchestrator.cli.launcher import DEFAULT_THREADS
from orchestrator.config.celery_config import QUEUES

DEFAULT_MAPPER = '{"name": "mapper", "model": {"provider": "scripted"}}'
DEFAULT_REDUCER = '{"name": "reducer", "model": {"provider": "scripted"}}'


class Parser(argparse.ArgumentParser):
    """argparse with its errors as the CLI's others: one ``error:`` line, exit code 2.
    Subcommand parsers are made of the same class."""

    def error(self, message: str) -> NoReturn:
        print_error_line(f"{message} (see {self.prog} --help)")
        sys.exit(USAGE_EXIT)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="orchestrator", description="Run LLM-agent work on Celery workers.")
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
    mr.add_argument(
        "--items",
        default="-",
        help="file of items: JSON lines (*.jsonl, *.ndjson), a JSON list, or text lines; - = stdin",
    )
    mr.add_argument(
        "--jsonl", action="store_true", help="read --items as JSON lines, one item a line"
    )
    mr.add_argument("--mapper", default=DEFAULT_MAPPER, help="AgentSpec JSON or @file")
    mr.add_argument(
        "--reducer",
        default=DEFAULT_REDUCER,
        help="AgentSpec JSON or @file, or the name of a @reducer function on the workers",
    )
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

    # watch, runs: the live run view and the recent runs (all their logic: watch_commands.py).
    from orchestrator.cli.watch_commands import add_commands as add_watch_commands

    add_watch_commands(commands)
    return parser
