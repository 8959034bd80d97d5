"""The broker on Redis: kombu's own suite, Celery's internals we rely on, channels, acks."""
