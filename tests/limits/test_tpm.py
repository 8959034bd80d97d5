"""Tokens per minute in provider pools: a call reserves its upper bound in a window shared by
every worker, settled to the usage reported; a call that would pass the limit waits holding no
slot, ending at once on cancel; a 429 whose headers say when to retry pauses the pool for
every worker. Real Redis, and a local server speaking the OpenAI wire format that enforces a
tokens-per-minute limit with OpenAI's 429 headers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
import redis

from benchmarks.limits.tpm_server import TokenLimitedServer
from orchestrator.config.settings import PoolLimit, Settings
from orchestrator.local import LocalRedis
from orchestrator.models import Message, ModelConfig, Usage
from orchestrator.state.keys import semaphore_key, token_amounts_key, token_window_key
from workers.execution.cancellation import Cancelled, CancelToken
from workers.limits import SharedLimit
from workers.providers import inflight
from workers.providers.base import ModelResponse, ProviderError, RetryableProviderError
from workers.providers.openai_chat import OpenAIChat
from workers.providers.pooled import PooledProvider, retry_wait_s

PROMPT = "p" * 2000  # 500 tokens by the server's count, about 2,100 by the bound


class WatchedToken(CancelToken):
    """A cancel token that tells when its holder first waits on it (it was told to wait)."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def sleep(self, seconds: float) -> None:
        self.waiting.set()
        super().sleep(seconds)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[TokenLimitedServer]:
    api = TokenLimitedServer(limit=1_000_000)
    for name, value in api.worker_env().items():
        monkeypatch.setenv(name, value)
    yield api
    api.close()


def pooled(redis_server: LocalRedis, pool: PoolLimit) -> tuple[PooledProvider, str]:
    """A pooled OpenAI provider (a worker's view: its own Redis client) and its model."""
    model = f"m-{uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_server.url)
    return PooledProvider(OpenAIChat(Settings()), client, {f"openai:{model}": pool}, 2.0), model


def call(provider: PooledProvider, model: str, cancel: CancelToken | None = None) -> int:
    config = ModelConfig(provider="openai", model=model, endpoint="limited", max_output_tokens=10)
    messages = [Message(role="user", content=PROMPT)]
    response = provider.complete(config, messages, cancel or CancelToken(), [])
    return response.usage.total_tokens


def in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    failures: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as failure:
            failures.append(failure)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, failures


def test_a_call_counts_the_usage_reported_once_it_ended(
    redis_server: LocalRedis, server: TokenLimitedServer
) -> None:
    provider, model = pooled(redis_server, PoolLimit(tpm=100_000))
    used = call(provider, model)
    assert used == server.accepted[0].tokens == 510
    amounts = redis.Redis.from_url(redis_server.url).hgetall(
        token_amounts_key(f"provider:openai:{model}")
    )
    assert int(amounts[b"#total"]) == used, "the bound reserved became the usage reported"


def test_a_call_that_would_pass_the_limit_waits_holding_no_slot_until_cancelled(
    redis_server: LocalRedis, server: TokenLimitedServer
) -> None:
    # One call's bound fits; a second one beside the first's usage does not.
    provider, model = pooled(redis_server, PoolLimit(max_concurrent=1, tpm=2500))
    call(provider, model)
    cancel = WatchedToken()
    thread, failures = in_thread(lambda: call(provider, model, cancel))
    assert cancel.waiting.wait(30), "the second call was never told to wait"
    state = redis.Redis.from_url(redis_server.url)
    assert state.zcard(semaphore_key(f"provider:openai:{model}")) == 0, "it holds no slot"
    cancel.cancel("stop")
    thread.join(30)
    assert not thread.is_alive() and isinstance(failures[0], Cancelled)
    assert len(server.accepted) == 1, "the waiting call was never sent"


def test_a_call_larger_than_the_whole_limit_fails_without_being_sent(
    redis_server: LocalRedis, server: TokenLimitedServer
) -> None:
    provider, model = pooled(redis_server, PoolLimit(tpm=1000))
    with pytest.raises(ProviderError, match="can never fit its limit of 1000 tokens per minute"):
        call(provider, model)
    assert server.accepted == [] and server.refused == 0


def test_a_429_with_reset_headers_pauses_the_pool_for_every_worker(
    redis_server: LocalRedis, server: TokenLimitedServer
) -> None:
    server.limit = 600  # one call fills the server's minute
    pool = PoolLimit(max_concurrent=4)  # no tpm: the server's 429 is what stops the calls
    first, model = pooled(redis_server, pool)
    call(first, model)
    with pytest.raises(RetryableProviderError) as refused:
        call(first, model)
    assert refused.value.rate_limited and (refused.value.retry_after_s or 0) > 1
    # Another worker (its own provider and Redis client) waits out the same pause.
    limits = {f"openai:{model}": pool}
    other = PooledProvider(
        OpenAIChat(Settings()), redis.Redis.from_url(redis_server.url), limits, 2.0
    )
    cancel = WatchedToken()
    thread, failures = in_thread(lambda: call(other, model, cancel))
    assert cancel.waiting.wait(30), "the other worker's call was never told to wait"
    cancel.cancel("stop")
    thread.join(30)
    assert isinstance(failures[0], Cancelled)
    assert (len(server.accepted), server.refused) == (1, 1), "nothing more reached the server"


def test_retry_after_wins_over_the_reset_headers() -> None:
    headers = {"retry-after": "2", "x-ratelimit-reset-tokens": "30s"}
    assert retry_wait_s(headers) == 2.0


def test_openai_reset_durations_are_read_and_the_longest_is_waited() -> None:
    assert retry_wait_s({"x-ratelimit-reset-tokens": "6m0s"}) == 360.0
    assert retry_wait_s({"x-ratelimit-reset-tokens": "1m30.5s"}) == 90.5
    headers = {"x-ratelimit-reset-requests": "20ms", "x-ratelimit-reset-tokens": "1.5s"}
    assert retry_wait_s(headers) == 1.5


def test_anthropic_reset_times_are_read_as_seconds_from_now() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    headers = {
        "anthropic-ratelimit-requests-reset": (now + timedelta(seconds=3)).isoformat(),
        "anthropic-ratelimit-tokens-reset": "2026-01-01T00:00:12Z",
    }
    assert retry_wait_s(headers, now=lambda: now) == 12.0


def test_headers_that_say_nothing_give_no_wait() -> None:
    assert retry_wait_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert retry_wait_s({"x-ratelimit-reset-tokens": "soon"}) is None
    assert retry_wait_s(None) is None


def test_a_call_settled_to_nothing_leaves_the_window_cleanly(redis_server: LocalRedis) -> None:
    client = redis.Redis.from_url(redis_server.url)
    name = f"provider:refused-{uuid4().hex[:8]}"
    limit = SharedLimit(client, name, None, None, 2.0, tokens_per_minute=100, window_s=0.01)
    assert limit.try_acquire("refused", 60) == 0
    limit.settle("refused", 0)  # the provider refused it: it used nothing
    limit.release("refused")
    # Every later acquisition passes over it as it leaves the window, and takes its place.
    while client.zscore(token_window_key(name), "refused") is not None:
        token = uuid4().hex
        if limit.try_acquire(token, 1) == 0:
            limit.release(token)
    total = int(client.hget(token_amounts_key(name), "#total") or 0)
    assert total == client.zcard(token_window_key(name)), "the sum is still the calls' sum"


class SlowToSend:
    """A surface that takes a while before it sends (as a first call imports its SDK), then
    sends through ``inflight``; it reads Redis's clock just before sending."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.sent_ms = 0

    def input_token_bound(self, *_: object) -> int:
        return 100

    def complete(
        self, config: ModelConfig, messages: object, cancel: CancelToken, tools: object
    ) -> ModelResponse:
        seconds, micros = self.client.time()
        self.sent_ms = int(seconds) * 1000 + int(micros) // 1000

        async def answer() -> ModelResponse:
            return ModelResponse(text="ok", usage=Usage(input_tokens=50, output_tokens=10))

        return inflight.run("slow", answer, cancel, 10)


def test_a_call_counts_from_when_its_request_is_sent(redis_server: LocalRedis) -> None:
    client = redis.Redis.from_url(redis_server.url)
    surface = SlowToSend(client)
    model = f"m-{uuid4().hex[:8]}"
    provider = PooledProvider(surface, client, {f"openai:{model}": PoolLimit(tpm=10_000)}, 2.0)
    config = ModelConfig(provider="openai", model=model, max_output_tokens=10)
    provider.complete(config, [Message(role="user", content="x")], CancelToken(), [])
    (entry,) = client.zrange(token_window_key(f"provider:openai:{model}"), 0, -1, withscores=True)
    assert entry[1] >= surface.sent_ms, "the call counts from its send, not its reservation"


def test_an_acquisition_sent_twice_counts_its_tokens_once(redis_server: LocalRedis) -> None:
    # redis-py sends a command again when its reply was lost (``OutageRetry``): the script
    # then runs twice for the same call.
    client = redis.Redis.from_url(redis_server.url)
    name = f"provider:twice-{uuid4().hex[:8]}"
    limit = SharedLimit(client, name, 1, 10, 2.0, tokens_per_minute=100, window_s=0.01)
    assert limit.try_acquire("call", 60) == 0
    assert limit.try_acquire("call", 60) == 0, "it holds its slot already"
    limit.release("call")
    # Once the call has left the window, nothing of it is counted.
    while client.zscore(token_window_key(name), "call") is not None:
        token = uuid4().hex
        if limit.try_acquire(token, 1) == 0:
            limit.release(token)
    total = int(client.hget(token_amounts_key(name), "#total") or 0)
    assert total == client.zcard(token_window_key(name)), "the sum is still the calls' sum"
