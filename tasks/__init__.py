"""Celery task definitions, kept thin: each one hands over to ``workers``."""
