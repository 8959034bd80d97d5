"""The Celery configuration shared by the workers' app and the client's sender app.

The client sends tasks by name (it never imports ``tasks``), so routes live here where both
sides see them.
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue

from orchestrator.config.settings import Settings
from orchestrator.state import sentinel

QUEUES = ("coordinator", "agents", "tools", "learner")


def _route(queue: str) -> dict[str, str]:
    return {"queue": queue, "exchange": queue, "routing_key": queue}


# Each queue has its own direct exchange and routing key: a message lands in one queue only.
TASK_ROUTES = {
    "tasks.coordinator.*": _route("coordinator"),
    "tasks.agents.*": _route("agents"),
    "tasks.tools.*": _route("tools"),
    "tasks.learner.*": _route("learner"),
    "tasks.diagnostics.*": _route("agents"),
}


# A sender (the client, a run's members, a chord's body, a member's retry) waits for the
# broker about as long as run-state commands wait for Redis (orchestrator/state/connection.py):
# connection attempts at 0, 0.5, 1 and 1.5 s, then every 2 s, for about 35 s.
BROKER_RETRY_INTERVALS = {"interval_start": 0, "interval_step": 0.5, "interval_max": 2}
BROKER_WAIT_S = 35
PUBLISH_RETRY_POLICY = {"max_retries": 20, **BROKER_RETRY_INTERVALS}


def sentinel_options(settings: Settings, url: str) -> dict[str, Any]:
    """The transport options a ``sentinel://`` broker or backend needs (the master's name,
    the sentinels' own password); none for any other URL."""
    if not sentinel.is_sentinel_url(url) or settings.sentinel_master is None:
        return {}
    password = settings.sentinel_password
    secret = password.get_secret_value() if password is not None else None
    return sentinel.transport_options(settings.sentinel_master, secret)


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings: JSON only, late acks, one message prefetched per slot, events on."""
    return {
        "broker_url": settings.broker,
        "result_backend": settings.backend,
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_queues": [
            Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES
        ],
        "task_default_queue": "agents",
        "task_routes": TASK_ROUTES,
        # A task whose worker dies is delivered again instead of being lost.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_transport_options": {
            # The Redis broker's redelivery timeout; RabbitMQ ignores it and redelivers when a
            # consumer's channel closes (its consumer_timeout must exceed the longest member).
            "visibility_timeout": settings.visibility_timeout_s,
            # Connecting to publish (kombu's default channel): the wait above, not 4 s.
            **BROKER_RETRY_INTERVALS,
            "connect_retries_timeout": BROKER_WAIT_S,
            **sentinel_options(settings, settings.broker),
        },
        "result_backend_transport_options": {
            "visibility_timeout": settings.visibility_timeout_s,
            **sentinel_options(settings, settings.backend),
        },
        "broker_connection_retry_on_startup": True,
        # A Redis restart: the worker reconnects by itself, and the members it runs keep
        # running (their messages are acknowledged once Redis is back; see
        # workers/broker/resilience.py for the worker's side).
        "broker_connection_retry": True,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # Publishing rides through a broker restart (BROKER_WAIT_S): a member's retry that
        # cannot be published is rejected and dropped.
        "task_publish_retry": True,
        "task_publish_retry_policy": PUBLISH_RETRY_POLICY,
        # Result-backend reads and writes that meet a dropped connection are retried too.
        "result_backend_always_retry": True,
        "result_backend_max_retries": 20,
        "result_backend_max_sleep_between_retries_ms": 2000,
        # Flower sees every task: sent, started, succeeded.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_track_started": True,
        "result_expires": 24 * 3600,
        "enable_utc": True,
    }
