"""Budgets and prices: every model call reserved and settled, never past the run's limits."""
