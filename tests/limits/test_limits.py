"""Shared limits and provider retries, against a real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from uuid import uuid4

import pytest
import redis

from orchestrator.local import LocalRedis
from orchestrator.models import Message, ModelConfig
from orchestrator.state.keys import rate_key, semaphore_key
from tests.conftest import FAST_TIMINGS
from tests.helpers import wait_for
from tests.redis_faults.test_redis_full import fill
from workers.execution.cancellation import CancelToken
from workers.limits import SharedLimit
from workers.providers import ModelResponse, RetryableProviderError
from workers.providers.retrying import RetryingProvider

LEASE_S = float(FAST_TIMINGS["ORCHESTRATOR_LEASE_S"])


def test_a_per_minute_limit_admits_that_many_then_says_how_long_to_wait(
    redis_server: LocalRedis,
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    name = f"rpm-{uuid4().hex}"
    limit = SharedLimit(client, name, None, 3, LEASE_S)
    tokens = [uuid4().hex for _ in range(3)]
    assert [limit.try_acquire(token) for token in tokens] == [0, 0, 0]
    first = client.zscore(rate_key(name), tokens[0])
    assert first is not None
    first_ms = int(first)

    def redis_ms() -> int:
        seconds, micros = client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    before = redis_ms()
    wait_ms = round(limit.try_acquire(uuid4().hex) * 1000)
    after = redis_ms()
    # Until the first call leaves the minute, as the limit's own clock (Redis TIME) counts it.
    assert first_ms + 60_000 - after <= wait_ms <= first_ms + 60_000 - before


def redis_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def test_a_concurrency_limit_frees_a_slot_on_release(redis_server: LocalRedis) -> None:
    limit = SharedLimit(
        redis.Redis.from_url(redis_server.url), f"sem-{uuid4().hex}", 2, None, LEASE_S
    )
    assert limit.try_acquire("a") == 0 and limit.try_acquire("b") == 0
    assert limit.try_acquire("c") > 0
    limit.release("a")
    assert limit.try_acquire("c") == 0
    limit.release("b")
    limit.release("c")


def test_a_released_slot_is_no_longer_renewed(redis_server: LocalRedis) -> None:
    name = f"renewed-{uuid4().hex}"
    limit = SharedLimit(redis.Redis.from_url(redis_server.url), name, 1, None, LEASE_S)

    def renewing() -> int:
        return sum(1 for t in threading.enumerate() if t.name == f"ao-limit-{name}")

    with limit.hold():
        assert renewing() == 1
    assert renewing() == 0


def hold_in_a_process(url: str, name: str, token: str) -> subprocess.Popen[str]:
    """A process that holds a slot of ``name`` (two at most) as ``token`` until killed."""
    holder = subprocess.Popen(
        [sys.executable, "-m", "tests.limits.limit_holder", url, name, "2", token],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **FAST_TIMINGS},
        cwd=Path(__file__).parents[2],
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def test_a_killed_holder_frees_its_slot_within_its_lease_and_a_live_one_keeps_its_own(
    redis_server: LocalRedis,
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    name = f"lease-{uuid4().hex}"
    holders = semaphore_key(name)
    live = hold_in_a_process(redis_server.url, name, "live")
    dead = hold_in_a_process(redis_server.url, name, "dead")
    contender = SharedLimit(client, name, 2, None, LEASE_S)
    try:
        first_expiry = client.zscore(holders, "live")
        assert first_expiry is not None
        dead.kill()  # SIGKILL: no release, no goodbye
        dead.wait()
        killed_at = redis_ms(client)
        last_expiry = client.zscore(holders, "dead")
        assert last_expiry is not None and last_expiry - killed_at <= LEASE_S * 1000
        wait_for(lambda: contender.try_acquire("next") == 0, "a slot was freed")
        assert set(client.zrange(holders, 0, -1)) == {b"live", b"next"}, "the dead one's slot"
        wait_for(lambda: redis_ms(client) > first_expiry, "the live holder outlived its lease")
        assert contender.try_acquire("one-too-many") > 0
        assert set(client.zrange(holders, 0, -1)) == {b"live", b"next"}, "renewed, kept"
        renewed = client.zscore(holders, "live")
        assert renewed is not None and renewed > first_expiry
    finally:
        contender.release("next")
        for holder in (live, dead):
            holder.kill()
            holder.wait()


class Flaky:
    """Fails with a retryable error ``failures`` times, then answers."""

    def __init__(self, failures: int, retry_after_s: float | None) -> None:
        self.failures = failures
        self.retry_after_s = retry_after_s
        self.calls = 0

    def complete(self, config, messages, cancel, tools):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls <= self.failures:
            raise RetryableProviderError("429", self.retry_after_s)
        return ModelResponse(text="ok")


def ask(provider: RetryingProvider, cancel: CancelToken | None = None) -> ModelResponse:
    messages = [Message(role="user", content="hi")]
    return provider.complete(ModelConfig(), messages, cancel or CancelToken(), [])


class RecordingToken(CancelToken):
    """A cancel token that records the waits asked of it."""

    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        super().sleep(seconds)


def test_retry_after_is_honoured() -> None:
    inner = Flaky(failures=2, retry_after_s=0.3)
    cancel = RecordingToken()
    assert ask(RetryingProvider(inner, retries=4), cancel).text == "ok"
    assert inner.calls == 3 and cancel.slept == [0.3, 0.3]


def test_retries_give_up_after_the_limit() -> None:
    inner = Flaky(failures=5, retry_after_s=0)
    with pytest.raises(RetryableProviderError):
        ask(RetryingProvider(inner, retries=2))
    assert inner.calls == 3


def test_a_cancel_ends_the_wait_between_retries() -> None:
    cancel = CancelToken()
    cancel.cancel("user")
    from workers.execution.cancellation import Cancelled

    with pytest.raises(Cancelled):
        ask(RetryingProvider(Flaky(failures=1, retry_after_s=30), retries=1), cancel)


def test_a_full_redis_keeps_a_live_holders_slot(private_redis: LocalRedis) -> None:
    client = redis.Redis.from_url(private_redis.url)
    name = f"full-{uuid4().hex}"
    limit = SharedLimit(client, name, 1, None, 0.3)
    assert limit.try_acquire("holder") == 0  # its renewal thread renews it from now on
    try:
        (first_lease,) = client.zrange(semaphore_key(name), 0, -1, withscores=True)
        fill(client)
        # Past the lease the holder had when Redis filled up, by Redis's clock: it was renewed.
        while (now_ms := _redis_ms(client)) <= first_lease[1] + 300:
            time.sleep(0.05)
        assert now_ms > first_lease[1]
        assert limit.try_acquire("other") > 0, "the slot is still held"
    finally:
        client.config_set("maxmemory", 0)
        limit.release("holder")
        limit.release("other")


def _redis_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000
