"""``orchestrator demo``: a capped map-reduce of offline scripted agents on local workers.

Uses the Redis at the configured URL, or starts an embedded one when none answers; starts
worker processes for every queue; stops everything it started, whatever happens.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from orchestrator.cli.progress import follow_with_progress
from orchestrator.cli.render import outputs_table, plain, print_status
from orchestrator.client import Client
from orchestrator.config.settings import Settings, masked_url, with_redis_url
from orchestrator.local import LocalRedis, LocalWorker, redis_answers, wait_for_workers
from orchestrator.models import AgentSpec, ModelConfig

SAMPLE_ITEMS = (
    "Incident report: checkout latency rose to 4 s after the cache cluster failover.",
    "Customer email: the CSV export drops rows that contain non-ASCII names.",
    "Design note: move session storage from sticky nodes to Redis with a 24 h TTL.",
    "Support ticket: password reset links expire before the email arrives.",
    "Postmortem: a cron job ran twice during the daylight-saving change.",
    "Feature request: let admins bulk-assign licences from a spreadsheet.",
    "Security review: API keys appear in debug logs of the billing service.",
    "Release notes draft: search now ranks exact title matches first.",
    "Load test: 2,000 concurrent users saturate the database connection pool.",
    "User interview: onboarding takes 40 minutes because of manual SSO setup.",
    "Bug report: mobile app crashes when the device language is right-to-left.",
    "Cost report: storage spend grew 30% from uncompressed audit logs.",
)

DEMO_TASK = "Summarise this inbox item for the weekly digest."


def demo_specs() -> tuple[AgentSpec, AgentSpec]:
    """The demo's mapper and reducer: the offline scripted model with realistic latency."""
    mapper = AgentSpec(
        name="summariser",
        instructions="You summarise engineering inbox items.",
        # A summary is short: an output limit near its size lets a budget reserve little.
        model=ModelConfig(
            provider="scripted",
            options={"latency_ms": 400, "jitter_ms": 200, "seed": 7},
            max_output_tokens=256,
        ),
    )
    reducer = AgentSpec(
        name="digest",
        instructions="You merge summaries into a weekly digest.",
        model=ModelConfig(provider="scripted", options={"latency_ms": 300}, max_output_tokens=1024),
    )
    return mapper, reducer


def run_demo(
    console: Console, settings: Settings, worker_count: int = 2, max_concurrent: int = 4
) -> int:
    """Run the demo end to end with ``settings`` (the CLI's); returns the process exit code."""
    embedded: LocalRedis | None = None
    url = settings.redis_url
    if redis_answers(url):
        console.print(Text.assemble("Using the Redis at ", (masked_url(url), "bold")))
    else:
        console.print(
            Text(f"No Redis answers at {masked_url(url)}: starting an embedded redis-server")
        )
        embedded = LocalRedis()
        url = embedded.url
        console.print(f"Embedded Redis at [bold]{url}[/]")
    log_dir = Path(tempfile.mkdtemp(prefix="ao-demo-"))
    env = {"ORCHESTRATOR_REDIS_URL": url}
    workers: list[LocalWorker] = []
    try:
        for number in range(worker_count):
            workers.append(
                LocalWorker(
                    f"demo{number}-{os.getpid()}", env, log_path=log_dir / f"worker{number}.log"
                )
            )
        console.print(f"Started {worker_count} workers (logs in {log_dir})")
        client = Client(settings=with_redis_url(settings, url))
        wait_for_workers(client.redis, [worker.hostname for worker in workers])
        mapper, reducer = demo_specs()
        handle = client.map_reduce(
            DEMO_TASK, list(SAMPLE_ITEMS), mapper, reducer, max_concurrent=max_concurrent
        )
        console.print(
            f"Submitted map-reduce [bold]{handle.id}[/]: {len(SAMPLE_ITEMS)} items, "
            f"at most {max_concurrent} mappers at once across {worker_count} workers"
        )
        status = follow_with_progress(handle, console)
        result = handle.result(timeout=60)
        console.print(outputs_table(result, tail=True))
        console.print(Panel(plain(result.reduced_answer), title="Reduced answer", expand=False))
        print_status(console, status)
        return 0 if status.state == "succeeded" else 1
    finally:
        for worker in workers:
            worker.stop()
        if embedded is not None:
            embedded.stop()
        console.print("Stopped the workers" + (" and the embedded Redis" if embedded else ""))
