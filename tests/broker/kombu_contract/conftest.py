"""Runs kombu's own Redis transport tests (``test_redis.py``, vendored unchanged) against
``workers.broker.resilience``: our ``Channel``, ``SentinelChannel``, ``QoS``, ``Transport`` and
``SentinelTransport`` stand in for kombu's, as class attributes of ``kombu.transport.redis``.

The swap is in place while the module is imported (it subclasses ``redis.Channel`` and
``redis.Transport`` at import time, so its test channel and transport subclass ours) and during
each of its tests; the rest of the session sees kombu unchanged. kombu's module also replaces
kombu's poller with a fake one before importing ``kombu.transport.redis``; the project imports
that module first, so the fake poller is put where kombu's module looks it up, for each test.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import kombu.transport as kombu_transport
import pytest
from kombu.transport import redis as kombu_redis
from kombu.utils import eventio

from tests.broker.kombu_contract.kombu_fixtures import module_exists, replace_module_value
from workers.broker import resilience as broker_resilience

__all__ = ["module_exists", "replace_module_value"]  # kombu's fixtures the module uses

SWAPPED = ("Channel", "SentinelChannel", "QoS", "Transport", "SentinelTransport")
OURS: dict[str, Any] = {name: getattr(broker_resilience, name) for name in SWAPPED}
ALIASES = ("redis", "rediss", "sentinel", "sentinels")


@contextmanager
def _ours_in_kombu() -> Iterator[None]:
    kept = {name: getattr(kombu_redis, name) for name in SWAPPED}
    poll = eventio.poll
    try:
        for name, cls in OURS.items():
            setattr(kombu_redis, name, cls)
        yield
    finally:
        for name, cls in kept.items():
            setattr(kombu_redis, name, cls)
        eventio.poll = poll  # kombu's module replaces it for good as it is imported


with _ours_in_kombu():
    kombu_suite = importlib.import_module("tests.broker.kombu_contract.test_redis")

# kombu's Channel and Transport of the tests must be built on ours, or nothing is tested.
assert issubclass(kombu_suite.Channel, broker_resilience.Channel)
assert issubclass(kombu_suite.Transport, broker_resilience.Transport)


@pytest.fixture(autouse=True)
def our_classes_in_kombu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees our classes where kombu's module has its own, and kombu's fake poller."""
    for name, cls in OURS.items():
        monkeypatch.setattr(kombu_redis, name, cls)
    monkeypatch.setattr(eventio, "poll", kombu_suite._poll)
    monkeypatch.setattr(kombu_redis, "poll", kombu_suite._poll)
    # Transports resolved by name: the session's before this test, and the ones kombu's tests
    # resolve, which must not reach the tests after it. An empty cache of this test's own,
    # the session's put back at teardown.
    monkeypatch.setattr(kombu_transport, "_transport_cache", {})


def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> pytest.Class | None:
    """kombu names its test classes ``test_*`` (its ``python_classes``); ours are ``Test*``."""
    if isinstance(collector, pytest.Module) and isinstance(obj, type) and name.startswith("test_"):
        return pytest.Class.from_parent(collector, name=name)
    return None


def pytest_configure(config: pytest.Config) -> None:
    for marker in ("ensured_modules", "replace_module_value"):  # kombu's fixtures read these
        config.addinivalue_line("markers", f"{marker}: kombu's test marker")
