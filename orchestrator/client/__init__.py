"""The client: submit runs (``Client``), follow and cancel them (``RunHandle``). It sends tasks
by name and never imports the worker code, so it runs anywhere that reaches Redis and the
broker."""

from orchestrator.client.client import Client
from orchestrator.client.handle import RunHandle

__all__ = ["Client", "RunHandle"]
