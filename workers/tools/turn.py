"""The calls of one model turn, run batch by batch under the turn's ``ToolPolicy``: how many
at once, and when the turn stops (fail-fast, cancel)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from orchestrator.models import ToolCall
from orchestrator.tools import ToolPolicy
from workers.agent.plan_use import plan_batches
from workers.execution.cancellation import CancelToken
from workers.tools.calls import ToolEvents, ToolResult
from workers.tools.slots import Attempt

if TYPE_CHECKING:
    from workers.tools.runner import ToolRunner

ResultSink = Callable[[int, ToolResult], object]
"""Gets each call's result (its index in the turn) as soon as it is known."""


class Turn:
    """The calls of one model turn, run batch by batch."""

    def __init__(
        self,
        runner: ToolRunner,
        calls: list[ToolCall],
        allowed: set[str],
        policy: ToolPolicy,
        cancel: CancelToken,
        events: ToolEvents,
        scope: str,
        on_result: ResultSink | None,
    ) -> None:
        self.runner, self.calls, self.allowed, self.policy = runner, calls, allowed, policy
        self.cancel, self.events, self.scope, self.on_result = cancel, events, scope, on_result
        self.results: list[ToolResult | None] = [None] * len(calls)
        self.attempts = [Attempt() for _ in calls]
        self.failed = ""

    def stop_reason(self) -> str:
        """Why no further call of the turn may start ('' while they may)."""
        if self.cancel.cancelled:
            return f"cancelled: {self.cancel.reason}"
        return self.failed

    async def run_all(self, parallel_groups: list[list[str]]) -> list[ToolResult]:
        everything = list(range(len(self.calls)))
        if self.policy.mode == "plan":
            batches = [(batch, len(batch)) for batch in plan_batches(self.calls, parallel_groups)]
        elif self.policy.mode == "sequential":
            batches = [(everything, 1)]
        else:
            batches = [(everything, self.policy.max_concurrency or len(self.calls))]
        for batch, width in batches:
            await self._run_batch(batch, width)
            if self.stop_reason():
                break
        reason = self.stop_reason()
        return [
            result or ToolResult(call=call, status="cancelled", content=reason + attempt.note)
            for call, result, attempt in zip(self.calls, self.results, self.attempts, strict=True)
        ]

    async def _run_batch(self, batch: list[int], width: int) -> None:
        """Run ``batch`` at most ``width`` at once; returns when all ended or the turn stops."""
        gate = asyncio.Semaphore(width)

        async def one(index: int) -> None:
            async with gate:  # queued calls wait here
                if self.stop_reason():
                    return  # a call queued behind a stop never starts
                call = self.calls[index]
                key = f"{self.scope}/{call.id}"
                result = await self.runner.call(
                    call, self.allowed, self.policy, self.events, key, self.attempts[index]
                )
                self.results[index] = result
                # Decided before ``gate`` is released: no queued call can start in between.
                if self.policy.join == "fail_fast" and not result.ok and not self.failed:
                    self.failed = f"cancelled: {call.name} ({call.id}) failed"
                if self.on_result is not None:
                    self.on_result(index, result)

        pending = {asyncio.create_task(one(index)) for index in batch}
        while pending:
            _, pending = await asyncio.wait(
                pending, timeout=0.1, return_when=asyncio.FIRST_COMPLETED
            )
            if self.stop_reason() and pending:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                pending = set()
