"""The per-process objects a worker shares between its tasks: store, lease keeper, watchdog."""

from __future__ import annotations

from functools import cache

from celery import Celery

from orchestrator.connection import redis_client
from orchestrator.run_store import RunStore
from orchestrator.settings import get_settings
from workers.leases import LeaseKeeper
from workers.watchdog import Watchdog


@cache
def store() -> RunStore:
    settings = get_settings()
    return RunStore(redis_client(settings.redis_url), settings)


@cache
def lease_keeper() -> LeaseKeeper:
    return LeaseKeeper(store(), get_settings().heartbeat_s)


@cache
def watchdog(app: Celery) -> Watchdog:
    return Watchdog(app, store(), get_settings().sweep_s)
