"""Redis over TLS (``rediss://``, the server's certificate checked against a CA named in the
URL) for the run store, the broker and the result backend, as resilient as ``redis://``: a
restart mid-run loses nothing and kills no worker. A certificate the URL's CA did not sign is
refused, and the refusal shows no password."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from kombu import Connection

from orchestrator import Client
from orchestrator.local import LocalRedis, LocalWorker, TlsFiles
from tests.conftest import FAST_TIMINGS
from tests.deploy.tls_certs import make_certs, openssl_missing
from tests.helpers import items, scripted, start_workers, wait_for
from tests.redis_faults.test_redis_restart import started
from workers.broker.resilience import TRANSPORT, use_resilient_broker

PASSWORD = "tls-secret-90d2"


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    missing = openssl_missing()
    if missing:
        pytest.skip(missing)
    folder = tmp_path / "certs"
    folder.mkdir()
    return make_certs(folder)


@pytest.fixture
def tls_redis(tls_files: TlsFiles) -> Iterator[LocalRedis]:
    try:
        server = LocalRedis(appendonly=True, password=PASSWORD, tls=tls_files)
    except RuntimeError as error:  # a redis-server built without TLS
        pytest.skip(f"redis-server does not serve TLS here: {error}")
    yield server
    server.stop()


@pytest.fixture
def tls_workers(tls_redis: LocalRedis, tmp_path: Path) -> Iterator[list[LocalWorker]]:
    env = {"ORCHESTRATOR_REDIS_URL": tls_redis.url, **FAST_TIMINGS}
    # Free slots: each worker waits on the broker (a pending BRPOP) while it runs members
    # whose messages it has not acknowledged, as in tests/redis_faults/test_redis_restart.py.
    workers = start_workers(env, ["s1", "s2"], tmp_path, 8)
    yield workers
    for worker in workers:
        worker.stop()


def test_a_tls_redis_restart_mid_run_loses_nothing_and_kills_no_worker(
    tls_redis: LocalRedis, tls_workers: list[LocalWorker]
) -> None:
    assert tls_redis.url.startswith("rediss://") and "ssl_cert_reqs=required" in tls_redis.url
    client = Client(redis_url=tls_redis.url)
    mapper = scripted("mapper", latency_ms=3000)
    handle = client.map_reduce("TLS restart", items(12), mapper, scripted("reducer"), 12)
    wait_for(lambda: started(handle, 6), "members are running")
    tls_redis.shutdown()
    time.sleep(3)  # the outage: three seconds without Redis
    tls_redis.start()
    result = handle.result(timeout=60)
    assert [o.outcome for o in result.map_outputs] == ["ok"] * 12
    assert all(worker.process.poll() is None for worker in tls_workers), "every worker survived"
    again = client.map_reduce("After", items(3), scripted("m"), scripted("r"), 3)
    assert [o.outcome for o in again.result(timeout=60).map_outputs] == ["ok"] * 3


def test_a_certificate_the_urls_ca_did_not_sign_is_refused_without_showing_the_password(
    tls_redis: LocalRedis, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    wrong = tls_redis.url.replace("ca.crt", "../other/ca.crt")
    make_certs(other)
    assert wrong != tls_redis.url
    with pytest.raises(redis.ConnectionError) as store:
        redis.Redis.from_url(wrong, socket_connect_timeout=2).ping()
    assert "certificate verify failed" in str(store.value).lower()
    broker = Connection(wrong, transport=TRANSPORT, connect_timeout=2)
    with pytest.raises(Exception) as broker_error:
        broker.ensure_connection(max_retries=1)
    broker.release()
    assert "certificate verify failed" in str(broker_error.value).lower()
    for error in (store.value, broker_error.value):
        assert PASSWORD not in str(error) and PASSWORD not in repr(error)


def test_a_rediss_broker_url_without_tls_options_still_checks_the_certificate(
    tls_redis: LocalRedis,
) -> None:
    bare = tls_redis.url.partition("?")[0]  # no CA named: the system's CAs do not know ours
    app = Celery(broker=bare)
    use_resilient_broker(app)
    with app.connection_for_write() as connection, pytest.raises(Exception) as refused:
        connection.ensure_connection(max_retries=1)
    assert "certificate verify failed" in str(refused.value).lower()
    assert PASSWORD not in str(refused.value)
