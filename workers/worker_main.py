"""``python -m workers.worker_main OPTIONS``: a Celery worker of this project's app, exactly as
``celery -A workers.app worker OPTIONS`` starts one (the same command, options and defaults),
without loading Celery's command plugins.

Why: before it parses its arguments, the ``celery`` command imports every installed
``celery.commands`` entry point. Flower, a dependency of this project (the ``flower`` service),
is one: every worker process would import Flower, Tornado and their dependencies for a
subcommand it never runs, about a third of its start-up CPU (measured with py-spy on a worker
start). ``orchestrator worker`` and the test suite start their workers through this module;
``celery -A workers.app worker`` keeps working as before.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """Run the worker with ``argv`` (``sys.argv[1:]`` by default) as its ``celery worker``
    options; exits as that command does."""
    from celery.bin.base import CLIContext
    from celery.bin.worker import worker

    from workers.app import app

    # What the ``celery`` group does before it calls its ``worker`` subcommand: the app's own
    # worker options join the command's.
    worker.params.extend(app.user_options.get("worker", []))
    context = CLIContext(app=app, no_color=False, workdir=None, quiet=False)
    args = list(sys.argv[1:] if argv is None else argv)
    worker.main(args=args, obj=context, prog_name="celery worker")


if __name__ == "__main__":
    main()
