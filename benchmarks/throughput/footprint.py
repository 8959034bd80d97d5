"""What a run leaves in Redis: the memory of its keys by family, measured with MEMORY USAGE.

Shared by the big-run benchmark and the footprint tests. Families: the run's own keys by name
(``run hash`` for ``ao:run:{id}``, else the suffix: ``outputs``, ``events``, ``records``...), the
result backend's task results (``celery-task-meta-*``: of the run's tasks, or every one when
``all_task_results``), the chord's keys in the backend, and the ``learner`` queue.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import redis

from orchestrator.state.keys import RunKeys

LEARNER_QUEUE = "learner"


@dataclass
class Footprint:
    """Bytes by family of keys, and how many keys each family has."""

    bytes: Counter[str] = field(default_factory=Counter)
    keys: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.bytes.values())

    def add(self, family: str, size: int) -> None:
        self.bytes[family] += size
        self.keys[family] += 1

    def table(self, items: int) -> str:
        """A Markdown table: family, keys, bytes, bytes per item; largest first."""
        lines = ["| keys | count | bytes | bytes per item |", "| --- | ---: | ---: | ---: |"]
        for family, size in self.bytes.most_common():
            lines.append(f"| {family} | {self.keys[family]} | {size:,} | {size / items:,.0f} |")
        lines.append(f"| **total** | | **{self.total:,}** | **{self.total / items:,.0f}** |")
        return "\n".join(lines)


def key_bytes(client: redis.Redis, key: str) -> int:
    """The memory of ``key`` counting every element (``SAMPLES 0``); 0 when it does not exist."""
    size = client.memory_usage(key, samples=0)
    return int(size or 0)


def run_footprint(client: redis.Redis, run_id: str, *, all_task_results: bool = False) -> Footprint:
    """The memory of what run ``run_id`` left in ``client`` (state and result backend in one
    Redis). With ``all_task_results``, every task result counts (in a Redis of the run's own:
    learner tasks have ids unrelated to the run)."""
    found = Footprint()
    run_key = RunKeys(run_id).run
    for raw in client.scan_iter(match=f"{run_key}*", count=1000):
        key = raw.decode()
        family = "run hash" if key == run_key else key[len(run_key) + 1 :]
        found.add(family, key_bytes(client, key))
    metas = "celery-task-meta-*" if all_task_results else f"celery-task-meta-{run_id}*"
    for raw in client.scan_iter(match=metas, count=1000):
        found.add("celery task results", key_bytes(client, raw.decode()))
    for pattern in (f"celery-taskset-meta-{run_id}*", f"chord-unlock-{run_id}*"):
        for raw in client.scan_iter(match=pattern, count=1000):
            found.add("chord", key_bytes(client, raw.decode()))
    if client.exists(LEARNER_QUEUE):
        found.add("learner queue", key_bytes(client, LEARNER_QUEUE))
    return found
