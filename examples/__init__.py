"""Runnable examples of the docs (not part of the installed packages)."""
