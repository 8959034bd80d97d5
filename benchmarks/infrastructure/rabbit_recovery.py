"""Recovery from a SIGKILLed worker: RabbitMQ (immediate redelivery + holder-gone takeover)
against the Redis broker (the lease path), same run, same lease.

Each round starts, for each broker, a private Redis and two workers of three slots, submits
a map-reduce of 6 one-second mappers at cap 6 (each worker runs 3), SIGKILLs the worker
that runs some of them once all 6 run, and times from the kill to the run's result. With
the Redis broker the dead worker's messages come back only after the visibility timeout
(hours), so its members wait for their leases to expire and the watchdog to publish them
again; with RabbitMQ they are delivered again at once and taken over from the dead holder.
Both include running the killed members again (one second each).

    python -m benchmarks.infrastructure.rabbit_recovery [--rounds N] [--lease-s S] [--print-only]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import redis

from benchmarks.harness import write_section
from orchestrator import AgentSpec, Client, ModelConfig
from orchestrator.config.settings import Settings
from orchestrator.local import LocalRedis, LocalWorker, wait_for_workers
from orchestrator.state.events import AgentStart
from orchestrator.state.keys import RunKeys
from tests.deploy.rabbitmq import LocalRabbitMQ

ROUNDS = 3
DEFAULT_LEASE_S = 30.0  # the project's default (Settings.lease_s)
MAPPER_S = 1.0
ITEMS = 6


def recovery_s(rabbit: LocalRabbitMQ | None, lease_s: float, logs: Path, tag: str) -> float:
    """Seconds from the SIGKILL of a worker holding members to the run's result."""
    server = LocalRedis()
    env = {
        "ORCHESTRATOR_REDIS_URL": server.url,
        "ORCHESTRATOR_LEASE_S": str(lease_s),
        "ORCHESTRATOR_HEARTBEAT_S": str(min(2.0, lease_s / 5)),
        "ORCHESTRATOR_SWEEP_S": str(min(5.0, lease_s / 5)),
    }
    if rabbit is not None:
        env["ORCHESTRATOR_BROKER_URL"] = rabbit.vhost_url()
    workers = [
        LocalWorker(f"{tag}-{name}", env, concurrency=3, log_path=logs / f"{tag}-{name}.log")
        for name in ("victim", "survivor")
    ]
    victim = workers[0]
    try:
        state = redis.Redis.from_url(server.url)
        wait_for_workers(state, [w.hostname for w in workers], timeout_s=60)
        client = Client(
            settings=Settings(redis_url=server.url, broker_url=env.get("ORCHESTRATOR_BROKER_URL"))
        )
        model = ModelConfig(provider="scripted", options={"latency_ms": MAPPER_S * 1000})
        handle = client.map_reduce(
            "Recover",
            [f"item {i}" for i in range(ITEMS)],
            AgentSpec(name="m", model=model),
            AgentSpec(name="r", model=ModelConfig(provider="scripted")),
            max_concurrent=ITEMS,
        )
        holders = RunKeys(handle.id).holders

        def ready() -> bool:
            running = [v for v in state.hvals(holders) if not v.startswith((b"a:", b"r:"))]
            on_victim = any(
                isinstance(e, AgentStart) and e.worker.endswith(f":{victim.pid}")
                for e in handle.events(follow=False)
            )
            return len(running) == ITEMS and on_victim

        deadline = time.monotonic() + 60
        while not ready():
            if time.monotonic() > deadline:
                raise RuntimeError("the run never ran on both workers")
            time.sleep(0.02)
        killed = time.perf_counter()
        victim.kill()
        result = handle.result(timeout=lease_s * 4 + 60)
        elapsed = time.perf_counter() - killed
        assert result.all_succeeded() and len(result.map_outputs) == ITEMS
        return elapsed
    finally:
        for worker in workers:
            worker.kill()
        server.stop()


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f} - {max(values):.2f})"


def main(rounds: int = ROUNDS, lease_s: float = DEFAULT_LEASE_S, write: bool = True) -> float:
    """Run the rounds, print them, write the RESULTS.md section (unless ``write`` is False) and
    return the median ratio of the Redis broker's recovery to RabbitMQ's."""
    logs = Path(tempfile.mkdtemp(prefix="ao-bench-rabbit-"))
    rabbit = LocalRabbitMQ()
    pairs: list[tuple[float, float]] = []
    try:
        for number in range(rounds):
            figures: dict[str, float] = {}
            order = ["rabbitmq", "redis"] if number % 2 == 0 else ["redis", "rabbitmq"]
            for broker in order:
                node = rabbit if broker == "rabbitmq" else None
                figures[broker] = recovery_s(node, lease_s, logs, f"{broker}{number}")
            pairs.append((figures["rabbitmq"], figures["redis"]))
            print(f"round {number + 1}: rabbitmq {pairs[-1][0]:.2f} s, redis {pairs[-1][1]:.2f} s")
    finally:
        rabbit.stop()
    rows = [
        f"| {number} | {fast:.2f} | {slow:.2f} | {slow / fast:.1f} |"
        for number, (fast, slow) in enumerate(pairs, 1)
    ]
    rabbits, redises = [p[0] for p in pairs], [p[1] for p in pairs]
    ratios = [slow / fast for fast, slow in pairs]
    body = "\n".join(
        [
            "`python -m benchmarks.infrastructure.rabbit_recovery`: two workers of 3 slots, a "
            f"map-reduce of {ITEMS} mappers of {MAPPER_S:g} s at cap {ITEMS}, lease {lease_s:g} s "
            "(the default); the worker running some of them is SIGKILLed once all run. Seconds "
            "from the kill to the run's result, the killed members' own second of work included.",
            "",
            "| round | RabbitMQ (takeover) | Redis broker (lease) | Redis / RabbitMQ |",
            "| --- | --- | --- | --- |",
            *rows,
            "",
            f"Median (min - max): RabbitMQ {spread(rabbits)} s, Redis broker {spread(redises)} "
            f"s, ratio {spread(ratios)}.",
        ]
    )
    print(body)
    if write:
        write_section("Recovery from a SIGKILLed worker: RabbitMQ against the Redis broker", body)
    return statistics.median(ratios)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--lease-s", type=float, default=DEFAULT_LEASE_S)
    parser.add_argument("--print-only", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args()
    main(args.rounds, args.lease_s, write=not args.print_only)
