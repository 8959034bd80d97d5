"""Settings and configuration: the environment's ``ORCHESTRATOR_*`` variables, Celery's, OTLP's."""
