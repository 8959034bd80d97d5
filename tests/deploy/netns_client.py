"""The client host of the multi-host tests: submit a map-reduce, wait for it, print JSON.

Run in the client's namespace (``ip netns exec NS python -m tests.deploy.netns_client``) with one
JSON object on stdin: ``{"redis_url", "items", "latency_ms", "max_concurrent", "timeout_s"}``.
It prints two JSON lines: ``{"run_id": ...}`` as soon as the run is submitted, then
``{"state", "outputs": [[name, outcome], ...], "reducer": outcome or null}`` once it ends.
"""

from __future__ import annotations

import json
import sys

from orchestrator import Client
from tests.helpers import items, scripted


def main() -> None:
    spec = json.loads(sys.stdin.read())
    client = Client(redis_url=str(spec["redis_url"]))
    handle = client.map_reduce(
        "Across hosts",
        items(int(spec["items"])),
        scripted("mapper", latency_ms=int(spec["latency_ms"])),
        scripted("reducer"),
        int(spec["max_concurrent"]),
    )
    print(json.dumps({"run_id": handle.id}), flush=True)
    result = handle.result(timeout=float(spec["timeout_s"]))
    reducer = result.reducer_output
    print(
        json.dumps(
            {
                "state": handle.status().state,
                "outputs": [[o.name, o.outcome] for o in result.map_outputs],
                "reducer": reducer.outcome if reducer is not None else None,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
