"""A member's life in a run: its claim by an execution, its lease's renewals, its checkpoints,
its completion (or its ending without running), and the partial reducers of a tree reduce."""

from __future__ import annotations

from typing import Any

from redis.exceptions import NoScriptError

from orchestrator.models import AgentCheckpoint, AgentOutput, Message, Outcome, RunRecord
from orchestrator.state.events import AgentStart, Event
from orchestrator.state.keys import CANCELS, run_keys
from orchestrator.state.scripts import load_script, run_script
from orchestrator.state.store import replies
from orchestrator.state.store.reads import MESSAGES
from orchestrator.state.store.replies import Admission, Claim, Completion, PartialAdmission, Renewal
from orchestrator.state.store.run_scripts import RunScripts


class MemberLifecycle(RunScripts):
    """Claims, renews, checkpoints and completes members."""

    def claim(
        self,
        run_id: str,
        member: str,
        token: str,
        timeout_s: float,
        event: AgentStart,
        gone_holder: str = "",
    ) -> Claim:
        """Take the lease of a member about to execute (see ``claim_member.lua``); its time
        limit ``timeout_s`` counts from its first claim. A ``busy`` claim's ``input`` is the
        execution that holds the member, when one does; ``gone_holder``: that execution, whose
        process is known to be gone (``workers/execution/liveness.py``), so that its live
        lease is taken over now (only if it still holds the member)."""
        timeout_ms = int(timeout_s * 1000)
        reply = self._run(
            run_id, "claim_member", member, token, self._lease_ms, timeout_ms,
            event.model_dump_json(), gone_holder,
        )  # fmt: skip
        return replies.claim(reply)

    def save_checkpoint(
        self, run_id: str, member: str, token: str, checkpoint: AgentCheckpoint
    ) -> bool:
        """Keep a running member's state after a completed turn, for a redelivery to resume;
        False when this execution no longer holds the member (nothing is written)."""
        kept = self._run(run_id, "save_checkpoint", member, token, checkpoint.model_dump_json())
        return bool(kept)

    def complete(
        self,
        run_id: str,
        member: str,
        output: AgentOutput,
        events: list[Event],
        *,
        node: str,
        token: str = "",
        messages: list[Message] | None = None,
        record: RunRecord | None = None,
        calls: tuple[str, int] | None = None,
    ) -> Completion:
        """Store a member's output (and the messages it added, and its record) once, emit
        ``events`` with it and admit the next members, which worker ``node`` publishes (its
        calls settled their usage in the budget as they ended). ``token`` is the execution's
        lease token ('' for a member that never ran): an execution that lost its lease has its
        result discarded. ``calls``: the execution's budget attempt and how many calls it
        reserved (``CallBudget.made``); those whose settle was lost are charged at their
        reservation."""
        attempt, count = calls or ("", 0)
        reply = self._run(
            run_id,
            "complete_member",
            member,
            node,
            token,
            self._lease_ms,
            output.model_dump_json(),
            output.outcome,
            MESSAGES.dump_json(messages).decode() if messages else "",
            record.model_dump_json() if record else "",
            attempt,
            count,
            CANCELS,
            *(event.model_dump_json() for event in events),
        )
        return replies.completion(reply, output)

    def end_members(
        self,
        run_id: str,
        outcome: Outcome,
        ended: list[tuple[str, str, str]],
        advance_to: int | None = None,
        *,
        node: str,
    ) -> tuple[int, bool, Admission]:
        """End members that never ran, in one call: (member, output JSON, AgentEnd JSON)
        each; members already ended keep their output. ``advance_to`` marks a never-published
        range as handled up to that index. Returns how many were ended, whether the run is
        now drained (see ``Completion``), and what the group slots they freed let in of the
        other runs of the run's concurrency group, which worker ``node`` publishes."""
        args = [value for triple in ended for value in triple]
        advance = "" if advance_to is None else advance_to
        reply = self._run(run_id, "end_members", outcome, advance, node, self._lease_ms, *args)
        return replies.ended_members(reply)

    def renew(self, leases: list[tuple[str, str, str]]) -> list[Renewal]:
        """Renew the leases ``(run_id, member, holder)`` in one round trip (see
        ``renew_lease.lua``)."""
        try:
            answers = self._renew(leases)
        except NoScriptError:
            # The server lacked the script: a shard of a Redis Cluster (a cluster pipeline
            # cannot load it as it executes, see scripts.py), or a new master after a failover
            # or a restart (the pipeline checked for it on the old one; redis-py retries the
            # send, not the check). Renewing twice does no harm.
            load_script(self.client, "renew_lease")
            answers = self._renew(leases)
        return replies.renewals(answers)

    def _renew(self, leases: list[tuple[str, str, str]]) -> list[Any]:
        with self.client.pipeline(transaction=False) as pipe:
            for run_id, member, holder in leases:
                args = [member, holder, self._lease_ms]
                run_script(pipe, "renew_lease", run_keys(run_id).all, args)
            return pipe.execute()

    def admit_partial(
        self, run_id: str, part: str, token: str, event: AgentStart
    ) -> PartialAdmission:
        """Let partial reducer ``part`` (``level.chunk``) of the final member held by ``token``
        run, counting it once as an agent of the budget (see ``admit_partial.lua``)."""
        reply = self._run(run_id, "admit_partial", part, token, event.model_dump_json())
        return replies.partial_admission(reply)

    def save_partial(
        self, run_id: str, part: str, token: str, output: AgentOutput, events: list[Event]
    ) -> bool:
        """Keep partial reducer ``part``'s output once and emit ``events`` with it; False when
        ``token`` no longer holds the final member (nothing is written) or it was kept."""
        emitted = [event.model_dump_json() for event in events]
        kept = self._run(run_id, "save_partial", part, token, output.model_dump_json(), *emitted)
        return bool(kept)
