"""Small builders shared by the tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from orchestrator import AgentSpec, ModelConfig
from orchestrator.local import LocalWorker, wait_for_workers
from tests import forks

if TYPE_CHECKING:
    import redis

    from workers.providers import ModelProvider


def scripted(name: str, max_output_tokens: int = 4096, **options: Any) -> AgentSpec:
    """An agent on the offline scripted model with ``options``."""
    model = ModelConfig(provider="scripted", options=options, max_output_tokens=max_output_tokens)
    return AgentSpec(name=name, model=model)


T = TypeVar("T")


def wait_for(
    check: Callable[[], T],
    what: str = "the condition held",
    timeout_s: float = 60,
    interval_s: float = 0.05,
) -> T:
    """Wait for a positive signal: call ``check`` until it returns something true, and return
    that; fail naming ``what`` if it has not come within ``timeout_s`` (generous: the machine
    may be busy, and a test never asserts how long a thing took)."""
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(interval_s)
    return value


def start_workers(
    env: dict[str, str],
    names: list[str],
    log_dir: Path,
    concurrency: int = 8,
    extra_args: Sequence[str] = (),
) -> list[LocalWorker]:
    """Start one worker per name on every queue, all at once, and wait until all have
    announced themselves; each logs to ``log_dir/NAME.log``."""
    import redis

    workers = [
        LocalWorker(
            name,
            env,
            concurrency=concurrency,
            log_path=log_dir / f"{name}.log",
            extra_args=extra_args,
        )
        for name in names
    ]
    try:
        wait_for_workers(
            redis.Redis.from_url(env["ORCHESTRATOR_REDIS_URL"]), [w.hostname for w in workers]
        )
    except Exception:
        for worker in workers:
            worker.stop()
        raise
    return workers


def providers(**settings: Any) -> Callable[[str], ModelProvider]:
    """The providers a worker would use with ``Settings(**settings)``, the rest read from this
    process's environment now: what an in-process agent run takes as ``provider_for``."""
    from orchestrator.config.settings import Settings
    from workers.providers import providers_for

    return providers_for(Settings(**settings))


def items(count: int) -> list[str]:
    return [f"item-{i}" for i in range(count)]


def run_cli(
    *args: str, env: dict[str, str], stdin: str = "", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``orchestrator ARGS`` in a process of its own with ``env`` added to this
    environment (forked from the zygote, tests/zygote.py, unless it is switched off)."""
    command = [sys.executable, "-m", "orchestrator.cli", *args]
    return forks.run(command, {**os.environ, **env}, stdin, timeout)


def stored_runs(client: redis.Redis) -> set[bytes]:
    """The runs that have keys in Redis (``ao:run:{TAG}ID[:PART]``), by their ``{TAG}ID``. To
    show that a refused submit wrote nothing, compare what is new: the runs of earlier tests may
    lose their keys meanwhile (an ended run's keys expire)."""
    keys = client.keys("ao:run:*")
    return {(key if isinstance(key, bytes) else key.encode()).split(b":")[2] for key in keys}


def parent_of(pid: int) -> int:
    """The parent process of the live process ``pid``."""
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def local_endpoints(port: int) -> str:
    """``ORCHESTRATOR_ENDPOINTS`` declaring a local server on ``port`` for every HTTP provider,
    each under the name ``test-{provider}``."""
    import json

    bases = {
        "openai": f"http://127.0.0.1:{port}/v1",
        "openai_responses": f"http://127.0.0.1:{port}/v1",
        "anthropic": f"http://127.0.0.1:{port}",
    }
    return json.dumps(
        {
            f"test-{provider}": {"provider": provider, "base_url": base}
            for provider, base in bases.items()
        }
    )


@contextmanager
def environment(env: dict[str, str]) -> Iterator[dict[str, str]]:
    """``env`` in ``os.environ`` for the block (settings made in it, ``Settings()``, read it),
    then the variables as they were."""
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
