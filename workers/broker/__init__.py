"""The broker as a worker sees it: riding through restarts, queues it may have forgotten."""
