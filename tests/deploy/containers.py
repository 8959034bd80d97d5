"""Run a command of a staged image as a container runs it, without a Docker engine.

The process starts in the image's ``WORKDIR`` with the image's environment and the service's,
nothing of this machine's (no ``PYTHONPATH``, no ``ORCHESTRATOR_*``), and on a hostname of its
own in a UTS namespace of its own, as Docker gives each container its id for a hostname. That
matters: Celery names a worker ``celery@<hostname>`` unless told otherwise, so replicas of one
service are distinct nodes only because their hostnames differ; here, without a namespace,
every process would be ``celery@<this machine>``.
"""

from __future__ import annotations

import functools
import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.image_build import Image

# Runs as the container's first process: take the hostname, then become the service's command.
_ENTER = (
    "import os, socket, sys; socket.sethostname(sys.argv[1]); os.execvp(sys.argv[2], sys.argv[2:])"
)
_PROBE = "import socket; socket.sethostname('probe')"


@functools.cache
def unshare_prefix() -> tuple[str, ...] | None:
    """An ``unshare`` command line that lets a process set a hostname of its own: as root, or
    in a user namespace; None when this machine allows neither."""
    for prefix in (("unshare", "--uts"), ("unshare", "--user", "--map-root-user", "--uts")):
        try:
            done = subprocess.run(
                [*prefix, "--", sys.executable, "-c", _PROBE], capture_output=True
            )
        except FileNotFoundError:
            return None
        if done.returncode == 0:
            return prefix
    return None


@dataclass
class Container:
    """One running "container": its hostname, process and log."""

    hostname: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def node(self) -> str:
        """Celery's default node name for a worker here (no ``-n``)."""
        return f"celery@{self.hostname}"

    def terminate(self) -> None:
        """SIGTERM (Celery's warm shutdown), without waiting for the end."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)

    def stop(self) -> None:
        """``docker stop``: SIGTERM, then SIGKILL if it does not end."""
        if self.process.poll() is not None:
            return
        self.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def run(image: Image, command: list[str], environment: dict[str, str], log: Path) -> Container:
    """Start ``command`` (a service's ``command``, in exec form) in ``image``."""
    prefix = unshare_prefix()
    if prefix is None:
        raise RuntimeError("unshare cannot give a process a hostname of its own here")
    hostname = secrets.token_hex(6)  # like the short container id Docker uses
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*prefix, "--", str(image.bin / "python"), "-c", _ENTER, hostname, *command],
            cwd=image.workdir,
            env={**image.process_env(), **environment},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Container(hostname, process, log)
