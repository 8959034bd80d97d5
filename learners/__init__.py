"""Learning logic: run records become plans (``tool_parallelism``)."""
