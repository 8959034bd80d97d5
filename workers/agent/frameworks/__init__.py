"""Adapters that put agent frameworks' models on an agent function's context."""
