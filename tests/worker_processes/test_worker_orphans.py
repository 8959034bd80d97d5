"""``orchestrator worker`` supervises Celery processes: killed, it takes them with it (a worker
left running would be unsupervised), and their members recover as any dead worker's do."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import Client
from orchestrator.local import LocalRedis, wait_for_workers
from tests.conftest import FAST_TIMINGS
from tests.helpers import items, scripted, start_workers, wait_for
from tests.redis_faults.test_redis_restart import started

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="a parent-death signal is Linux's"
)


def running(pid: int) -> bool:
    """True while ``pid`` runs (a killed process its new parent has not reaped is a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.fixture
def supervised(
    tmp_path: Path,
) -> Iterator[tuple[LocalRedis, subprocess.Popen[bytes], dict[str, str]]]:
    server = LocalRedis()
    env = {"ORCHESTRATOR_REDIS_URL": server.url, **FAST_TIMINGS}
    log = open(tmp_path / "supervisor.log", "wb")  # noqa: SIM115
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "worker", "--processes", "2", "-c", "4",
         "--without-gossip", "--without-mingle"],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    workers: list[int] = []
    yield server, supervisor, env, workers
    for pid in workers:
        if running(pid):
            os.kill(pid, signal.SIGKILL)
    supervisor.kill()
    supervisor.wait()
    log.close()
    server.stop()


def test_killing_the_supervisor_ends_its_workers_and_their_members_run_elsewhere(
    supervised: tuple[LocalRedis, subprocess.Popen[bytes], dict[str, str], list[int]],
    tmp_path: Path,
) -> None:
    server, supervisor, env, workers = supervised
    client = Client(redis_url=server.url)
    host = socket.gethostname()
    wait_for_workers(client.redis, [f"w1@{host}", f"w2@{host}"], timeout_s=60)
    workers.extend(children(supervisor.pid))
    assert len(workers) == 2
    handle = client.map_reduce(
        "Orphans", items(4), scripted("mapper", latency_ms=3000), scripted("reducer"), 4
    )
    wait_for(lambda: started(handle, 4), "the supervised workers run every member")
    supervisor.kill()
    supervisor.wait()
    wait_for(lambda: not any(running(pid) for pid in workers), "its workers ended with it")
    # Another worker takes the dead workers' members over, as from any dead worker.
    (rescuer,) = start_workers(env, ["rescuer"], tmp_path, 4)
    try:
        result = handle.result(timeout=90)
    finally:
        rescuer.stop()
    assert [o.outcome for o in result.map_outputs] == ["ok"] * 4


def test_the_supervisor_holds_none_of_this_package(tmp_path: Path) -> None:
    """What ``orchestrator worker`` becomes once its workers' command lines are built: a
    process of the standard library alone (its memory counts against the host's)."""
    from orchestrator.cli.launcher import supervisor

    probe = (
        "import runpy, sys; runpy.run_path(sys.argv[1], run_name='probe');"
        "print(sorted({m.split('.')[0] for m in sys.modules}"
        " & {'orchestrator', 'workers', 'celery', 'redis', 'pydantic', 'rich'}))"
    )
    shown = subprocess.run(
        [sys.executable, "-P", "-c", probe, supervisor.__file__],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert shown.stdout.strip() == "[]", shown.stdout
