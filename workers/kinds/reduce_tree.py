"""A map-reduce's reduce, inside its final member's execution: one reducer call when the
summaries fit the reducer's input budget, else a tree of partial reducers.

Level 1 packs the mappers' summaries, in item order, into chunks that fit
(``workers/kinds/reduce_prompts.py``) and runs a partial reducer ``{reducer}.1.{chunk}`` on each,
at most the run's ``max_concurrent`` at once. Their answers, in chunk order, are the entries of
level 2, packed the same way, and so on until a level fits in one chunk: the reducer itself
(the final member's own agent run) reduces that one, and its answer is the run's.

Each partial reducer is an agent of the run's budget, admitted (and counted for
``max_agents``) when it starts; its model calls are budgeted like any call. Its output is kept
in the run's ``partials`` hash under the final member's lease, so an execution that takes the
member over does not run it again.
"""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from orchestrator import tracing
from orchestrator.models import AgentOutput, AgentSpec, Outcome, RunRecord, Usage, utcnow
from orchestrator.state.events import AgentEnd, AgentStart
from orchestrator.state.keys import FINAL_MEMBER
from orchestrator.state.results import summaries
from workers import spans
from workers.agent.loop import AgentRun
from workers.execution.leases import LEASE_LOST
from workers.execution.member_events import MemberEvents
from workers.execution.records import ship_record
from workers.kinds.base import Execution, MemberIdentity, MemberStart
from workers.kinds.reduce_prompts import NoRoom, TreeFrame, entry, fits, reducer_prompt


def reduce(
    execution: Execution,
    reducer: AgentSpec,
    task: str,
    outputs: list[AgentOutput],
    max_concurrent: int,
) -> AgentRun:
    """Reduce the mappers' ``outputs`` for ``task`` with ``reducer`` in ``execution``.

    The run's reducer output describes the whole reduce: the answer of the reducer at the top,
    with the turns, tool calls and tokens of every reducer call, partial ones included. A
    partial reducer that fails (or is stopped) ends the reduce with its outcome and error. One
    that the budget denies ends it ``skipped``, its answer what the last level left: the
    answers of the partial reducers that ran and the entries of the chunks denied, in order.
    """
    prompt = reducer_prompt(task, outputs)
    if fits(reducer, prompt):
        return execution.run(MemberStart([], prompt))
    started = utcnow()
    try:
        frame = TreeFrame.for_run(reducer, task, len(outputs))
    except NoRoom as no_room:
        return _not_run(execution, reducer, started, "error", str(no_room))
    tree = _Tree(execution, reducer, frame, max_concurrent)
    entries = summaries(outputs)
    # Typed data is never cut: each entry goes whole into one call, or the reduce says why not.
    typed = any(o.data is not None for o in outputs if o.succeeded())
    level = 1
    while True:
        try:
            chunks = frame.chunks(entries, typed)
        except NoRoom as no_room:
            return _not_run(execution, reducer, started, "error", str(no_room), tree.usage)
        if len(chunks) == 1:
            break
        ended = tree.level(level, chunks)
        ran = [output for output in ended if output is not None]
        # A partial reducer is left unstarted only once another failed.
        failed = next((o for o in ran if o.outcome in ("error", "cancelled")), None)
        if failed is not None:
            error = f"{failed.error} (partial reducer {failed.name})"
            return _not_run(execution, reducer, started, failed.outcome, error, tree.usage)
        denied = next((o for o in ran if o.outcome == "skipped"), None)
        if denied is not None:
            error = f"{denied.error} (partial reducer {denied.name})"
            answer = "\n".join(_left(ran, chunks))
            return _not_run(execution, reducer, started, "skipped", error, tree.usage, answer)
        entries = [entry(o.name, o.answer) for o in ran]
        typed = any(o.data is not None for o in ran)
        level += 1
    top = execution.run(MemberStart([], frame.prompt(level, 1, 1, chunks[0])))
    return _whole(top, tree, started, chunks[0])


class _Tree:
    """The partial reducers of one execution's tree reduce, and what they spent."""

    def __init__(
        self, execution: Execution, reducer: AgentSpec, frame: TreeFrame, max_concurrent: int
    ) -> None:
        self._execution = execution
        self._reducer = reducer
        self._frame = frame
        self._max_concurrent = max_concurrent
        self._failed = threading.Event()
        self._lock = threading.Lock()
        self.usage = Usage()
        self.turns = 0
        self.tool_calls = 0

    def level(self, level: int, chunks: list[list[str]]) -> list[AgentOutput | None]:
        """Run a partial reducer per chunk, at most ``max_concurrent`` at once; their outputs in
        chunk order (None for one not started because another failed)."""
        parts = len(chunks)
        with ThreadPoolExecutor(max_workers=min(self._max_concurrent, parts)) as pool:
            # Each thread runs in a copy of this one's context: its spans hang from the
            # reducer's.
            futures = [
                pool.submit(contextvars.copy_context().run, self._partial, level, i, parts, lines)
                for i, lines in enumerate(chunks, 1)
            ]
            return [future.result() for future in futures]

    def _partial(self, level: int, part: int, parts: int, lines: list[str]) -> AgentOutput | None:
        if self._failed.is_set():
            return None
        execution, key = self._execution, f"{level}.{part}"
        identity = MemberIdentity(f"{self._reducer.name}.{key}", part=key)
        fields = identity.event_fields()
        run_id, store, token = execution.run_id, execution.store, execution.token
        start = AgentStart(run_id=run_id, worker=execution.worker, **fields)
        admission = store.admit_partial(run_id, key, token, start)
        if admission.output is not None:  # done by an earlier execution
            output = admission.output
        elif admission.action == "denied":
            output = AgentOutput.not_run(identity.name, "skipped", admission.reason)
            spans.budget_denied(admission.reason, FINAL_MEMBER)
            end = AgentEnd(run_id=run_id, outcome="skipped", error=admission.reason, **fields)
            store.save_partial(run_id, key, token, output, [end])
        elif admission.action == "cancelled":
            reason = f"cancelled: {admission.reason}"
            output = AgentOutput.not_run(identity.name, "cancelled", reason)
        elif admission.action == "lost":  # this execution's result is dropped anyway
            output = AgentOutput.not_run(identity.name, "error", LEASE_LOST)
        else:
            output = self._run(identity, self._frame.prompt(level, part, parts, lines))
        if output.outcome in ("error", "cancelled"):
            self._failed.set()
        with self._lock:
            self.usage = self.usage + output.tokens
            self.turns += output.turns
            self.tool_calls += output.tool_calls
        return output

    def _run(self, identity: MemberIdentity, prompt: str) -> AgentOutput:
        """One partial reducer's agent run, kept with its events once it ends."""
        execution = self._execution
        run_id, store = execution.run_id, execution.store
        events = MemberEvents(store, run_id, identity)
        attributes = spans.agent_attributes(self._reducer, identity.name, FINAL_MEMBER, None)
        with tracing.span_under(None, f"invoke_agent {identity.name}", attributes) as span:
            run = execution.agent(MemberStart([], prompt), name=identity.name, events=events)
            spans.end_agent(span, run.output)
        output = run.output
        end = AgentEnd(
            run_id=run_id,
            outcome=output.outcome,
            usage=output.tokens,
            error=output.error,
            **identity.event_fields(),
        )
        assert identity.part is not None
        kept = store.save_partial(
            run_id, identity.part, execution.token, output, [*events.deferred, end]
        )
        if kept:
            ship_record(execution.app, run.record)
        return output


def _left(ended: list[AgentOutput], chunks: list[list[str]]) -> list[str]:
    """What a level the budget stopped leaves: each chunk's answer if it was reduced, else its
    entries."""
    lines: list[str] = []
    for output, chunk in zip(ended, chunks, strict=True):
        if output.outcome == "ok":
            lines.append(entry(output.name, output.answer))
        else:
            lines.extend(chunk)
    return lines


def _whole(top: AgentRun, tree: _Tree, started: datetime, lines: list[str]) -> AgentRun:
    """The top reducer's run on ``lines``, counting every reducer call of the tree; a top
    reducer the budget denied leaves ``lines`` as the answer."""
    skipped = top.output.outcome == "skipped"
    output = top.output.model_copy(
        update={
            "answer": "\n".join(lines) if skipped else top.output.answer,
            "turns": top.output.turns + tree.turns,
            "tool_calls": top.output.tool_calls + tree.tool_calls,
            "tokens": top.output.tokens + tree.usage,
            "started_at": started,
            "duration_ms": _ms_since(started, top.output.ended_at),
        }
    )
    return AgentRun(output, top.new_messages, top.context, top.record)


def _not_run(
    execution: Execution,
    reducer: AgentSpec,
    started: datetime,
    outcome: Outcome,
    error: str,
    usage: Usage | None = None,
    answer: str = "",
) -> AgentRun:
    """A reduce that ended before the top reducer ran: no call of its own, what the partial
    reducers spent, and ``answer``."""
    ended = utcnow()
    output = AgentOutput(
        name=execution.identity.name,
        answer=answer,
        outcome=outcome,
        error=error,
        tokens=usage or Usage(),
        started_at=started,
        ended_at=ended,
        duration_ms=_ms_since(started, ended),
    )
    record = RunRecord(
        run_id=execution.run_id,
        agent_name=output.name,
        agent_id=reducer.agent_id,
        started_at=started,
        ended_at=ended,
        outcome=output.outcome,
    )
    return AgentRun(output, [], [], record)


def _ms_since(started: datetime, ended: datetime | None) -> float:
    return ((ended or utcnow()) - started).total_seconds() * 1000
