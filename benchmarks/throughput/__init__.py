"""Throughput and scale against bare Celery, big runs, the tree reduce, fairness, watchdogs."""
