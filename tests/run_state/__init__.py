"""The run state in Redis: its keys, a model-based test of its scripts, what runs leave."""
