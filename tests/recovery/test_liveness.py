"""A lease holder's process is known gone only when it is: its named Redis connection closed
with it (``workers/execution/liveness.py``)."""

from __future__ import annotations

import os
import subprocess
import sys

from orchestrator.local import LocalRedis
from orchestrator.state.connection import redis_client
from tests.helpers import wait_for
from workers.execution.liveness import holder_gone, holder_process, new_token, process_presence

HOLDER = """
import sys
from orchestrator.state.connection import redis_client
from workers.execution.liveness import new_token, process_presence
client = redis_client(sys.argv[1])
assert process_presence(client).wait_up(30)
print(new_token(client), flush=True)
sys.stdin.read()  # hold on until killed
"""


def test_a_holder_is_gone_once_its_process_is_killed_and_not_before(
    private_redis: LocalRedis,
) -> None:
    client = redis_client(private_redis.url)
    assert process_presence(client).wait_up(30)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, private_redis.url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert holder.stdout is not None
        token = holder.stdout.readline().strip()
        assert holder_process(token) is not None, "a token of a named process names it"
        assert not holder_gone(client, token), "a live holder is never gone"
        holder.kill()  # SIGKILL: the kernel closes its connection
        holder.wait()
        wait_for(lambda: holder_gone(client, token), "the killed holder looked gone", 30)
    finally:
        holder.kill()
        holder.wait()


def test_tokens_that_name_no_process_are_never_gone(private_redis: LocalRedis) -> None:
    client = redis_client(private_redis.url)
    assert process_presence(client).wait_up(30)
    mine = new_token(client)
    assert holder_process(mine) is not None
    assert not holder_gone(client, mine)  # this process is alive
    for token in ("first", "0123456789abcdef0123456789abcdef", "a:worker@host", "x:cancelled"):
        assert holder_process(token) is None
        assert not holder_gone(client, token)
