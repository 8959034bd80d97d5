"""A process that takes a slot of a shared limit and holds it until it is killed:
``python -m tests.limits.limit_holder REDIS_URL NAME MAX_CONCURRENT TOKEN``. Its lease is the
settings' ``lease_s``; it prints ``held`` once it has the slot."""

from __future__ import annotations

import sys
import threading

import redis

from orchestrator.config.settings import Settings
from workers.limits import SharedLimit


def main() -> None:
    url, name, max_concurrent, token = sys.argv[1:5]
    client = redis.Redis.from_url(url)
    limit = SharedLimit(client, name, int(max_concurrent), None, Settings().lease_s)
    while (wait_s := limit.try_acquire(token)) > 0:
        threading.Event().wait(limit.pause(wait_s))
    print("held", flush=True)
    threading.Event().wait()  # hold until killed; the limit's renewal thread keeps the lease


if __name__ == "__main__":
    main()
