"""How ``make test`` spreads the suite over processes (pytest-xdist ``-n 6 --dist loadfile``):
a module's tests run together on one process, in their file's order, so that what a module
starts for its tests (module-scoped fixtures: a Redis, workers, a cluster, an image) starts
once; the modules that share the RabbitMQ node run on one process too, which starts it once.
Each process has its own Redis and workers besides (the session fixtures of conftest.py).
The longest modules start first, so that none of them is the last thing the run waits for:
the order changes the wall time only, never a result."""

from __future__ import annotations

import pytest
from xdist.scheduler import LoadFileScheduling

JOINED = {
    "tests/operate/test_rabbitmq.py": "rabbitmq",
    "tests/budget/test_takeover_budget.py": "rabbitmq",
}
"""Modules run on one process, by the name of what they share."""

LONGEST_FIRST = (
    "tests.operate.test_image",  # builds the image's venv: installs every dependency afresh
    "tests.operate.test_sentinel",
    "tests.operate.test_multi_host",
    "tests.recovery.test_leases",
    "tests.operate.test_rabbitmq",
    "tests.budget.test_takeover_budget",
    "tests.client.test_cli_errors",
    "tests.limits.test_groups",
    "tests.learning.test_learning",
    "tests.tracing.test_tracing",
    "tests.tools.test_remote_calls",
    "tests.client.test_watch",
    "tests.operate.test_redis_password",
    "tests.tools.test_tools",
    "tests.client.test_cli",
    "tests.operate.test_secret_scan",
    "tests.runs.test_child_runs",
    "tests.tracing.test_tracing_workers",
    "tests.limits.test_cancel",
    "tests.cache_governor.test_cache_governor",
)
"""The modules that took longest (``--durations``), longest first."""


class ModuleScheduling(LoadFileScheduling):
    """``--dist loadfile`` with the modules of ``JOINED`` as one unit each."""

    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        return JOINED.get(module, module)


def longest_first(items: list[pytest.Item]) -> None:
    """Sort ``items`` so that the modules of ``LONGEST_FIRST`` come first, in its order, each
    whole; the others keep their order after them."""
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(
        key=lambda item: rank.get(getattr(getattr(item, "module", None), "__name__", ""), len(rank))
    )
