"""What runs inside a Celery worker: the app, the agent loop, providers, leases, the watchdog."""
