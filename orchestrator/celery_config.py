"""The Celery configuration shared by the workers' app and the client's sender app.

The client sends tasks by name (it never imports ``tasks``), so routes live here where both
sides see them.
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue

from orchestrator.settings import Settings

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
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout_s},
        "result_backend_transport_options": {"visibility_timeout": settings.visibility_timeout_s},
        "broker_connection_retry_on_startup": True,
        # Flower sees every task: sent, started, succeeded.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_track_started": True,
        "result_expires": 24 * 3600,
        "enable_utc": True,
    }
