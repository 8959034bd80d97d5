"""How the CLI reports what went wrong: one ``error:`` line on stderr and an exit code, never
a traceback.

Exit codes follow argparse and the shells: 2 when the input is wrong (the command line, a
file it names, the settings) and nothing was done; 1 when something failed while doing it
(Redis, the broker, a run that failed or is not there); 141 and 130, as a shell reports a
command ended by SIGPIPE or SIGINT, when stdout was closed early or the user pressed Ctrl-C.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import redis
from kombu.exceptions import OperationalError
from pydantic import ValidationError
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, AuthorizationError
from redis.retry import Retry
from rich.console import Console
from rich.text import Text

from orchestrator.cli.render import plain
from orchestrator.config.settings import (
    ENV_PREFIX,
    URL_FIELDS,
    InvalidSettingsError,
    masked_url,
    url_passwords,
)
from orchestrator.errors import InvalidRunError, OrchestratorError
from orchestrator.state import sentinel

RUNTIME_EXIT = 1
USAGE_EXIT = 2
INTERRUPTED_EXIT = 130
CLOSED_PIPE_EXIT = 141


class UsageError(OrchestratorError):
    """A mistake in the command line or in a file it names; the message names the option or
    the file and the field."""


class RedisUnreachableError(OrchestratorError):
    """The Redis of run state did not answer, or refused the credentials."""


# Input rejected before anything was done: running the same command again cannot succeed.
USAGE_ERRORS = (UsageError, InvalidRunError, InvalidSettingsError)
# What a command may meet besides usage errors; each is one line, never a traceback (which
# would show the values of the failing call's arguments, a URL's password among them).
RUNTIME_ERRORS = (
    OrchestratorError,
    ValueError,
    OSError,
    redis.RedisError,
    OperationalError,
)


def exit_code(error: BaseException) -> int:
    """2 for a usage error, 1 for anything else."""
    return USAGE_EXIT if isinstance(error, USAGE_ERRORS) else RUNTIME_EXIT


def field_errors(error: ValidationError) -> str:
    """``field: what is wrong`` for each error, without the input (it may be long, or hold a
    secret): ``model.provider: unknown provider 'x' (known providers: ...)``."""
    causes = []
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in item["loc"]) or "value"
        context = item.get("ctx") or {}
        # A validator's own ValueError reads better without pydantic's "Value error, ".
        message = str(context["error"]) if item["type"] == "value_error" else item["msg"]
        causes.append(f"{where}: {message}")
    return "; ".join(causes)


def describe(error: BaseException) -> str:
    """The message of ``error`` for a user: ours as they are, others with their type."""
    if isinstance(error, OrchestratorError):
        return str(error)
    if isinstance(error, ValidationError):
        return f"invalid {error.title}: {field_errors(error)}"
    if isinstance(error, OperationalError):
        return f"cannot reach the broker ({error})"
    return f"{type(error).__name__}: {error}"


def require_redis(
    url: str,
    timeout_s: float = 5,
    sentinel_master: str | None = None,
    sentinel_password: str | None = None,
) -> None:
    """Ping the Redis at ``url`` once, without the client's retries, so that a Redis that is
    not there is reported at once, naming its URL (password masked), rather than after the
    half minute a running command rides out an outage for. A ``sentinel://`` URL pings the
    master the sentinels name ``sentinel_master``."""
    if sentinel_master is not None and sentinel.is_sentinel_url(url):
        probe = sentinel.probe_client(url, sentinel_master, sentinel_password, timeout_s)
    else:
        probe = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
    try:
        probe.ping()
    except (AuthenticationError, AuthorizationError) as refused:
        raise RedisUnreachableError(
            f"the Redis at {masked_url(url)} refused the credentials "
            f"({type(refused).__name__}: {refused})"
        ) from None
    except redis.RedisError as failure:
        reason = f"cannot reach Redis at {masked_url(url)} ({failure})"
        raise RedisUnreachableError(reason) from None
    finally:
        probe.close()


def print_error(error: BaseException, urls: Iterable[str | None] = ()) -> None:
    """``error: <message>`` on one line of stderr, with every password of ``urls`` and of the
    configured URLs masked, should a library repeat one."""
    print_error_line(describe(error), urls)


def print_error_line(text: str, urls: Iterable[str | None] = ()) -> None:
    """``error: text`` on one line of stderr, passwords masked, whitespace folded."""
    configured = [os.environ.get(f"{ENV_PREFIX}{field.upper()}") for field in URL_FIELDS]
    passwords = url_passwords([*urls, *configured])
    sentinel_password = os.environ.get(f"{ENV_PREFIX}SENTINEL_PASSWORD")
    if sentinel_password:  # the sentinels' own, not in any URL
        passwords.add(sentinel_password)
    for password in sorted(passwords, key=len, reverse=True):
        text = text.replace(password, "**")
    line = Text.assemble(("error:", "red"), " ", plain(" ".join(text.split())))
    # soft_wrap: one line however narrow the terminal, so that it greps as one.
    Console(stderr=True).print(line, soft_wrap=True)
