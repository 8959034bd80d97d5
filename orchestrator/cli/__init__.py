"""The ``orchestrator`` command: demo, worker, submit, status, events, cancel, and the live
view (``watch``, ``runs``). ``main`` is the console script's entry point."""

from __future__ import annotations

import argparse
import os
import sys

from rich.console import Console

from orchestrator.cli import commands
from orchestrator.cli.errors import (
    CLOSED_PIPE_EXIT,
    INTERRUPTED_EXIT,
    RUNTIME_ERRORS,
    UsageError,
    exit_code,
    print_error,
    require_redis,
)
from orchestrator.cli.launcher import default_processes, exec_worker, run_workers
from orchestrator.cli.parser import build_parser as _parser
from orchestrator.client import Client
from orchestrator.config.settings import (
    ENV_PREFIX,
    InvalidSettingsError,
    Settings,
    load_settings,
    with_redis_url,
)

__all__ = ["_parser", "main"]


class _Stdout(Console):
    """The console of stdout. Rich ends the process with exit code 1 when the reader of a
    pipe goes away; this raises the ``BrokenPipeError`` instead, for ``main`` to handle as it
    does ``print``'s."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


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
            # The demo reads its settings, and its workers theirs, from this environment.
            os.environ["ORCHESTRATOR_REDIS_URL"] = args.redis_url
        return run_demo(
            out, load_settings(), worker_count=args.workers, max_concurrent=args.max_concurrent
        )
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
        return commands.submit_branches(args, client, out)
    if args.command == "submit":
        return commands.submit_map_reduce(args, client, out)
    if args.command == "events":
        return commands.print_events(args, client)
    if args.command == "plans":
        return commands.plans(args, client, out)
    if args.command == "cache":
        from orchestrator.cli.cache_view import cache_command

        return cache_command(args, client, out)
    if args.command == "learn":
        return commands.learn(args, client)
    if args.command == "tools":
        return commands.tools(client)
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
