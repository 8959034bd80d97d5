"""Who "this worker" is. A worker process has three names, each for one use:

- ``node_name()``: the Celery worker (node) it belongs to, ``name@host`` (``-n``): what its
  presence, its concurrency group declarations and the admissions and leases it holds are kept
  under. Every pool process of one worker shares it. Outside a Celery worker (a test, a script)
  it is this process's ``host:pid``.
- ``process_id()``: this process, ``host:pid``: what the events of the members it runs say ran
  them (``AgentStart.worker``). A forked pool child has its own.
- ``connection_name()``: this process's named Redis connection, ``ao-proc-<tag>`` with a random
  tag per process, by which another worker can tell that it is gone (``execution/liveness.py``).
"""

from __future__ import annotations

import os
import secrets
import socket
from functools import cache

CONNECTION_PREFIX = "ao-proc-"
"""The start of every process's connection name."""

# The Celery node name, once the worker set it (celeryd_init, before its pool forks).
_node: str | None = None


def node_name() -> str:
    """The Celery node name of this worker (``name@host``), set at its start; ``host:pid``
    of this process outside a Celery worker."""
    return _node if _node is not None else process_id()


def set_node_name(name: str) -> None:
    """Called once when the worker starts, before it consumes anything."""
    global _node
    _node = name


@cache
def _process_id(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}"


def process_id() -> str:
    """``host:pid`` of this process, worked out once per process (a forked pool child has a
    pid of its own, so the cache is keyed on it)."""
    return _process_id(os.getpid())


@cache
def _tag(pid: int) -> str:
    return secrets.token_hex(6)


def process_tag() -> str:
    """This process's random tag (a forked pool child has a pid, and so a tag, of its own):
    the end of its connection name and of the lease tokens that name it."""
    return _tag(os.getpid())


def connection_name() -> str:
    """The name of this process's connection in ``CLIENT LIST``."""
    return CONNECTION_PREFIX + process_tag()
