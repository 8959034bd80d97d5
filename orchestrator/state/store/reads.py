"""What a run holds, read: its request, its status, its members' outputs, messages and
records, what its end stored, and the wait for its end."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import redis
from pydantic import TypeAdapter

from orchestrator.models import OUTCOMES, AgentOutput, Message, RunRecord, RunStatus
from orchestrator.models.requests import RUN_REQUEST, RunRequest
from orchestrator.state.children import CHILD_FIELD
from orchestrator.state.connection import WRITES_REFUSED, refusal_message, write_refusal
from orchestrator.state.keys import run_keys
from orchestrator.state.store.replies import text
from orchestrator.state.store.run_scripts import RunScripts

OUTPUT_PAGE = 500
"""Outputs read per round trip when paging through a run's outputs."""
MESSAGES = TypeAdapter(list[Message])


class RunReads(RunScripts):
    """Reads a run's state."""

    def exists(self, run_id: str) -> bool:
        return bool(self.client.exists(run_keys(run_id).run))

    def request(self, run_id: str) -> RunRequest:
        """The run's validated request (cached: a request never changes)."""
        return _cached_request(self.client, run_id)

    def traceparent(self, run_id: str) -> str | None:
        """The W3C traceparent of the run's trace, or None when it has none (yet)."""
        raw = self.client.hget(run_keys(run_id).run, "traceparent")
        return text(raw) if raw else None

    def status(self, run_id: str) -> RunStatus | None:
        """A snapshot of the run, or None when no such run exists."""
        keys = run_keys(run_id)
        try:
            fields, in_flight = self._read_status(keys.run, keys.leases, transaction=True)
        except WRITES_REFUSED:
            # A full Redis refuses a transaction, even of reads: the two reads then come apart.
            fields, in_flight = self._read_status(keys.run, keys.leases, transaction=False)
        if b"kind" not in fields:
            return None  # no run, or the remains of one that a flush or a lost Redis took
        get = {text(k): text(v) for k, v in fields.items() if k != b"result"}
        ended = get["state"] not in ("pending", "running")
        return RunStatus(
            run_id=run_id,
            kind=get["kind"],
            state=get["state"],  # type: ignore[arg-type]
            total=int(get["total"]),
            counts={outcome: int(get.get(f"n_{outcome}", 0)) for outcome in OUTCOMES},
            in_flight=in_flight,
            cancel_reason=get.get("cancel") or None,
            error=get.get("error") or None,
            group=get.get("group") or None,
            parent=get.get("parent") or None,
            children=[child for name, child in get.items() if name.startswith(CHILD_FIELD)],
            writes_refused=None if ended else self._writes_refused(run_id),
        )

    def _read_status(self, run: str, leases: str, transaction: bool) -> list[Any]:
        with self.client.pipeline(transaction=transaction) as pipe:
            pipe.hgetall(run)
            pipe.zcard(leases)
            replies: list[Any] = pipe.execute()
            return replies

    def _writes_refused(self, run_id: str) -> str | None:
        """Redis's words if it refuses writes on the run's shard (it is full) now, else None:
        asked with a write that writes nothing (SET XX of a key that does not exist)."""
        try:
            self.client.set(f"{run_keys(run_id).run}:write-probe", "", xx=True)
        except redis.ResponseError as error:  # NOREPLICAS, READONLY...: no reason to fail
            refused = write_refusal(error)
            return None if refused is None else refusal_message(refused)
        return None

    def wait_for_end(self, run_id: str, block_ms: int) -> None:
        """Return once the run has ended, or after ``block_ms`` at the latest (its status then
        says whether it has). Blocks on the run's ``done`` stream, which gets one entry when
        the run ends: any number of waiters block on it, however busy the run, and one that
        arrives late finds it there."""
        self.client.xread({run_keys(run_id).done: "0-0"}, count=1, block=block_ms)

    def ending_json(self, run_id: str) -> str | None:
        """What the run's end stored for its result (see ``finalize``), None when nothing."""
        raw = self.client.hget(run_keys(run_id).run, "result")
        return text(raw) if raw else None

    def outputs(self, run_id: str) -> list[AgentOutput]:
        """The stored member outputs, in member order (members not yet ended are missing)."""
        return [output for _, output in self.indexed_outputs(run_id)]

    def indexed_outputs(
        self, run_id: str, start: int = 0, stop: int | None = None, page_size: int = OUTPUT_PAGE
    ) -> Iterator[tuple[int, AgentOutput]]:
        """(index, output) of members ``start`` to ``stop - 1`` (by default to the last
        member) in member order, skipping members not yet ended. Read ``page_size`` at a time
        and parsed one by one, so that a run of any size is never one reply or one document.
        Raises ``ValueError`` at once for a negative bound or a page size below 1."""
        if start < 0 or (stop is not None and stop < 0):
            raise ValueError("start and stop must not be negative")
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        if stop is None:
            total = self.client.hget(run_keys(run_id).run, "total")
            stop = int(total) if total else 0
        return self._output_pages(run_keys(run_id).outputs, range(start, stop), page_size)

    def _output_pages(
        self, key: str, indices: range, page_size: int
    ) -> Iterator[tuple[int, AgentOutput]]:
        for first in range(0, len(indices), page_size):
            page = indices[first : first + page_size]
            raws = self.client.hmget(key, [str(index) for index in page])
            for index, raw in zip(page, raws, strict=True):
                if raw is not None:
                    yield index, AgentOutput.model_validate_json(raw)

    def messages(self, run_id: str, member: str) -> list[Message]:
        """The messages member ``member`` added to its context (empty if none were kept)."""
        raw = self.client.hget(run_keys(run_id).messages, member)
        return MESSAGES.validate_json(raw) if raw else []

    def record(self, run_id: str, member: str) -> RunRecord | None:
        """The stored record of member ``member`` (kept for single runs only: the others' go
        to the learners alone)."""
        raw = self.client.hget(run_keys(run_id).records, member)
        return RunRecord.model_validate_json(raw) if raw else None

    def stored_output(self, run_id: str, member: str) -> AgentOutput | None:
        raw = self.client.hget(run_keys(run_id).outputs, member)
        return AgentOutput.model_validate_json(raw) if raw else None


@lru_cache(maxsize=256)
def _cached_request(client: redis.Redis, run_id: str) -> RunRequest:
    raw = client.hget(run_keys(run_id).run, "request")
    if raw is None:
        raise LookupError(f"run {run_id} has no request")
    return RUN_REQUEST.validate_json(raw)
