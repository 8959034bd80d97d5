"""Limits a run is held to: token budgets, tokens per minute against 429s, cancel, deadlines."""
