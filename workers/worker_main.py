"""``python -m workers.worker_main OPTIONS``: a Celery worker of this project's app, as
``celery -A workers.app worker OPTIONS`` starts one (the same command: its options, defaults,
``CELERY_WORKER_*`` variables and exit codes), without loading Celery's command plugins. It
does not detach (``-D``): run it under a supervisor, as ``orchestrator worker`` does.

Why: before it parses its arguments, the ``celery`` command imports every installed
``celery.commands`` entry point. Flower, a dependency of this project (the ``flower`` service),
is one: every worker process would import Flower, Tornado and their dependencies for a
subcommand it never runs (py-spy on a worker's start: about a third of its CPU until ready).
``orchestrator worker`` and the test suite start their workers through this module;
``celery -A workers.app worker`` keeps working as before.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence

PROG = "python -m workers.worker_main"
USAGE_EXIT = 2  # click's, as celery's for a bad option


def main(argv: Sequence[str] | None = None) -> None:
    """Run the worker with ``argv`` (``sys.argv[1:]`` by default) as its ``celery worker``
    options; exits as that command does."""
    args = list(sys.argv[1:] if argv is None else argv)
    if any(arg in ("-D", "--detach") for arg in args):
        # Celery's detach starts ``python -m celery`` again with these arguments, which name
        # no app: it would exit at once, leaving no worker.
        print(f"{PROG}: -D/--detach is not supported; run it under a supervisor", file=sys.stderr)
        raise SystemExit(USAGE_EXIT)

    # As ``python -m celery`` does first: a gevent or eventlet pool patches the standard
    # library before anything else is imported.
    from celery import maybe_patch_concurrency

    maybe_patch_concurrency(["", *args])

    from celery.bin.base import CLIContext
    from celery.bin.worker import worker

    # Collections during the imports find nothing to free (modules, classes, pydantic's
    # schemas: they live as long as the process) yet walk every object made so far, and the
    # worker's later full collections would walk them all again: no collection during the
    # imports, and what they made is set aside for good (gc.freeze).
    gc.disable()
    from workers.app import app

    gc.enable()
    gc.freeze()

    # What the ``celery`` group does before it calls its ``worker`` subcommand: the app's own
    # worker options join the command's.
    worker.params.extend(app.user_options.get("worker", []))
    context = CLIContext(app=app, no_color=False, workdir=None, quiet=False)
    worker.main(args=args, obj=context, prog_name=PROG, auto_envvar_prefix="CELERY_WORKER")


if __name__ == "__main__":
    main()
