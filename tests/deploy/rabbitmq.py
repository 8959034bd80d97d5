"""A private RabbitMQ node for the tests and benchmarks that use RabbitMQ as the broker.

The node is the system's ``rabbitmq-server`` started as a process of our own: its own node
name (``ao-<random>@localhost``), AMQP and distribution ports, Erlang port mapper (epmd, on a
free port, so nothing of the machine's own RabbitMQ is touched), and its data, logs and
configuration in a temporary directory; no plugins (the management plugin is off). Any
RabbitMQ the machine runs as a service (port 5672) is never used.

Each Redis of a test gets a virtual host of its own (``vhost_url()``): workers of one Redis
must never take the messages of runs kept in another, which they would drop as unknown runs.
The node is booted with a pool of virtual hosts already declared (a definitions file), so
handing one out costs nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import amqp

from orchestrator.config.celery_config import QUEUES
from orchestrator.local import free_port

# The server script itself: /usr/sbin/rabbitmq-server is a wrapper that switches to the
# rabbitmq user (who could not write our temporary directory) and to its home.
SERVER_SCRIPTS = ("/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/sbin/rabbitmq-server")
VHOST_POOL = 64
START_TIMEOUT_S = 90
USER = "guest"  # the default user, allowed on loopback only


def server_binary() -> str | None:
    """The rabbitmq-server start script, or None when RabbitMQ is not installed."""
    for path in SERVER_SCRIPTS:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("rabbitmq-server")


def _password_hash(password: str) -> str:
    """RabbitMQ's stored form of a password (rabbit_password_hashing_sha256): base64 of a
    4-byte salt followed by SHA-256(salt + password)."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def _definitions(vhosts: list[str]) -> dict[str, object]:
    permissions = {"configure": ".*", "write": ".*", "read": ".*"}
    return {
        "users": [
            {
                "name": USER,
                "password_hash": _password_hash(USER),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": ["administrator"],
            }
        ],
        "vhosts": [{"name": name} for name in vhosts],
        "permissions": [{"user": USER, "vhost": name, **permissions} for name in vhosts],
    }


def amqp_answers(port: int, vhost: str = "/", timeout_s: float = 1.0) -> bool:
    """True when an AMQP connection to ``vhost`` on 127.0.0.1:``port`` opens."""
    try:
        connection = amqp.Connection(
            f"127.0.0.1:{port}",
            userid=USER,
            password=USER,
            virtual_host=vhost,
            connect_timeout=timeout_s,
        )
        connection.connect()
        connection.close()
        return True
    except Exception:
        return False


class LocalRabbitMQ:
    """A private RabbitMQ node on free loopback ports; ``stop()`` ends it and removes its files.

    Raises ``RuntimeError`` when it does not start (its log's tail in the message) and
    ``FileNotFoundError`` when RabbitMQ is not installed.
    """

    def __init__(self) -> None:
        binary = server_binary()
        if binary is None:
            raise FileNotFoundError("rabbitmq-server is not installed")
        self.node = f"ao-{secrets.token_hex(4)}@localhost"
        self.port = free_port()
        self._dist_port = free_port()
        self._epmd_port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="ao-rabbitmq-"))
        self._vhosts = [f"ao-{i}" for i in range(VHOST_POOL)]
        self._next_vhost = 0
        self._kept: set[str] = set()
        self._epmd: subprocess.Popen[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        try:
            self._start(binary)
        except BaseException:
            self.stop()
            raise

    def _write_files(self) -> dict[str, str]:
        home = self._dir / "home"  # the Erlang cookie goes here
        home.mkdir()
        (self._dir / "enabled_plugins").write_text("[].\n")  # no plugins: management off
        (self._dir / "rabbitmq-env.conf").write_text("")  # not the system's env file
        definitions = self._dir / "definitions.json"
        definitions.write_text(json.dumps(_definitions(self._vhosts)))
        (self._dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            f"load_definitions = {definitions}\n"
            "log.console = false\n"
            "log.file.level = warning\n"
        )
        return {
            "HOME": str(home),
            "ERL_EPMD_PORT": str(self._epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_CONF_ENV_FILE": str(self._dir / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self._dist_port),
            "RABBITMQ_CONFIG_FILE": str(self._dir / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self._dir / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self._dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self._dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self._dir / "log"),
            "RABBITMQ_PID_FILE": str(self._dir / "rabbitmq.pid"),
        }

    def _start(self, binary: str) -> None:
        env = {**os.environ, **self._write_files()}
        # An epmd of our own, in the foreground so that stop() can end it: one the node started
        # by itself would be a daemon that outlives the node.
        self._epmd = subprocess.Popen(
            ["epmd", "-port", str(self._epmd_port), "-address", "127.0.0.1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        output = open(self._dir / "server.out", "wb")  # noqa: SIM115
        self._process = subprocess.Popen(
            [binary],
            env=env,
            cwd=self._dir,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        output.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not amqp_answers(self.port, self._vhosts[0]):
            if self._process.poll() is not None or time.monotonic() > deadline:
                tail = (self._dir / "server.out").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"rabbitmq-server did not start on port {self.port}:\n{tail}")
            time.sleep(0.2)

    def url(self, vhost: str) -> str:
        """The broker URL of ``vhost`` on this node."""
        return f"amqp://{USER}:{USER}@127.0.0.1:{self.port}/{vhost}"

    def vhost_url(self, keep: bool = False) -> str:
        """The broker URL of a virtual host no one uses. Once each of the pool was handed
        out, those not kept (``keep``: for the whole session) are handed out again, their
        queues deleted first, so that no message of an earlier test is left in them."""
        if len(self._kept) >= len(self._vhosts):
            raise RuntimeError(f"all {len(self._vhosts)} virtual hosts of the node are kept")
        while (vhost := self._vhosts[self._next_vhost % len(self._vhosts)]) in self._kept:
            self._next_vhost += 1
        if self._next_vhost >= len(self._vhosts):
            self._delete_queues(vhost)
        self._next_vhost += 1
        if keep:
            self._kept.add(vhost)
        return self.url(vhost)

    def _delete_queues(self, vhost: str) -> None:
        connection = amqp.Connection(
            f"127.0.0.1:{self.port}", userid=USER, password=USER, virtual_host=vhost
        )
        connection.connect()
        try:
            channel = connection.channel()
            for queue in QUEUES:
                channel.queue_delete(queue)
        finally:
            connection.close()

    def stop(self) -> None:
        """Stop the node (SIGTERM: the start script stops it cleanly), then its epmd."""
        for process in (self._process, self._epmd):
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # its own session: only its processes
                process.wait()
        shutil.rmtree(self._dir, ignore_errors=True)


def start_or_skip() -> LocalRabbitMQ:
    """A private node, or ``pytest.skip`` saying why there cannot be one."""
    import pytest

    if server_binary() is None:
        pytest.skip("RabbitMQ tests: rabbitmq-server is not installed (.ci/run installs it)")
    if shutil.which("epmd") is None:
        pytest.skip(
            "RabbitMQ tests: Erlang's epmd is not installed (it comes with rabbitmq-server)"
        )
    return LocalRabbitMQ()
