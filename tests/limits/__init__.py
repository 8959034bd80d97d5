"""Shared limits: provider pools, tokens per minute, groups, time limits, cancel, deadlines."""
