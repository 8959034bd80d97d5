"""The name of this worker node, as its presence and the holders of the members it admits
know it: Celery's node name (``name@host``), set when the worker starts."""

from __future__ import annotations

import os
import socket

_name = f"{socket.gethostname()}:{os.getpid()}"


def node_name() -> str:
    """This worker's node name (``host:pid`` outside a Celery worker)."""
    return _name


def set_node_name(name: str) -> None:
    """Called once when the worker starts, before it consumes anything."""
    global _name
    _name = name
