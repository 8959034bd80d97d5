"""What the run scripts reply, decoded into the store's answers.

One convention for every script (``lua/``): a script whose call can end in several ways replies
a list whose first entry names the outcome (``'stored'``, ``'busy'``, ``'denied'``...), then
what goes with it; a script that answers yes or no replies 1 or 0, as Redis's own commands do
(``SETNX``); a count or a time is a number. The replies are read only by the process that ran
the script, with the scripts it loaded itself (each process loads its own, and a changed
script is a new SHA): during a rolling upgrade, a worker of the old version runs its own
scripts and reads their replies, so the values of a reply may change from one version to the
next.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.models import AgentCheckpoint, AgentOutput


@dataclass
class Admission:
    """Members the window let in, members the budget denied (index, reason), and the cancel
    reason if the run is being cancelled ('' otherwise). ``others``: what the same step let in
    of the other runs of the run's concurrency group (run id -> their admission), which the
    caller publishes as it does the run's own."""

    admitted: list[int] = field(default_factory=list)
    denied: list[tuple[int, str]] = field(default_factory=list)
    cancel: str = ""
    others: dict[str, Admission] = field(default_factory=dict)


@dataclass
class Claim:
    """What a starting member execution must do: ``run`` (with ``input``, the checkpoint an
    earlier execution left, if any, and ``remaining_s`` of the member's time limit), return the
    stored output (``done``), end as ``cancelled`` (``input`` is the reason), end as timed out
    (``timeout``: its limit passed in an earlier execution), or step aside (``busy``, or
    ``gone`` when the run no longer exists). ``taken_over``: an earlier execution claimed the
    member (its lease expired, or its worker died), and this one takes it over."""

    action: str
    input: str = ""
    checkpoint: AgentCheckpoint | None = None
    remaining_s: float = 0.0
    taken_over: bool = False


@dataclass
class Completion:
    """The result of storing a member's output. ``status`` is ``stored``; ``duplicate`` when
    the member had already ended (its first output is in ``output``); ``discarded`` when the
    execution no longer held the member's lease (its result is dropped; its calls' usage was
    counted as they settled); ``gone`` when the run no longer exists. ``drained``: a cancelled
    run has nothing left in flight, so its final step can run now."""

    status: str
    output: AgentOutput | None
    admission: Admission
    drained: bool = False

    @property
    def stored(self) -> bool:
        return self.status == "stored"


@dataclass
class PartialAdmission:
    """Whether a partial reducer of a tree reduce may run: ``run`` (counted as an agent, its
    start emitted), ``done`` (an earlier execution stored ``output``), ``denied`` or
    ``cancelled`` (with ``reason``), or ``lost`` (this execution no longer holds the final
    member)."""

    action: str
    reason: str = ""
    output: AgentOutput | None = None


@dataclass
class Renewal:
    """A heartbeat's answer for one held lease: ``ok``, ``lost`` (another execution holds it,
    or it ended) or ``gone`` (the run no longer exists), and the run's cancel reason."""

    status: str
    cancel: str


@dataclass
class Sweep:
    """The watchdog's findings for one run: members to publish again, members to end as
    cancelled (``abandon``, and the never-published ``unstarted`` range) or as timed out
    (``expire``) or as skipped (``denied`` by the budget, whose ending was lost), and
    ``action``, a lost step to redo: ``readmit``, ``regate``, ``refinish``, ``requeue`` or
    ''."""

    state: str
    cancel: str
    republish: list[str]
    abandon: list[str]
    expire: list[str]
    unstarted: range
    action: str
    denied: list[tuple[str, str]]


def text(value: bytes | str) -> str:
    """A reply's string (redis-py hands bytes, unless the client decodes)."""
    return value.decode() if isinstance(value, bytes) else value


def texts(values: Iterable[bytes | str]) -> list[str]:
    return [text(value) for value in values]


def admission(
    admitted: list[int], denied: list[bytes | int], others: list[Any] | None = None
) -> Admission:
    """An admission from a script's reply: the run's admitted and (denied, reason) list, and
    the other runs' shares of its group as a flat list of (run id, admitted, denied)."""
    pairs = [(int(denied[i]), text(denied[i + 1])) for i in range(0, len(denied), 2)]  # type: ignore[arg-type]
    shares = others or []
    return Admission(
        admitted=[int(i) for i in admitted],
        denied=pairs,
        others={
            text(shares[i]): admission(shares[i + 1], shares[i + 2])
            for i in range(0, len(shares), 3)
        },
    )


def started(reply: list[Any]) -> Admission:
    """``start_run.lua``: {admitted, denied, cancel reason, other runs' shares}."""
    admitted, denied, cancel, others = reply
    first = admission(admitted, denied, others)
    first.cancel = text(cancel)
    return first


def claim(reply: list[Any]) -> Claim:
    """``claim_member.lua``: {action, ...}; ``run`` carries the input, the checkpoint, the
    time left (ms) and whether an earlier execution had claimed the member."""
    action, *rest = reply
    if text(action) != "run":
        return Claim(action=text(action), input=text(rest[0]) if rest else "")
    checkpoint = AgentCheckpoint.model_validate_json(rest[1]) if rest[1] else None
    return Claim(
        action="run",
        input=text(rest[0]),
        checkpoint=checkpoint,
        remaining_s=int(rest[2]) / 1000,
        taken_over=text(rest[3]) == "1",
    )


def completion(reply: list[Any], output: AgentOutput) -> Completion:
    """``complete_member.lua``: {'stored', admitted, denied, drained, shares},
    {'duplicate', stored output}, {'discarded'} or {'gone'}; ``output`` is what was sent."""
    status = text(reply[0])
    if status == "duplicate":
        stored = AgentOutput.model_validate_json(reply[1])
        return Completion(status=status, output=stored, admission=Admission())
    if status != "stored":
        return Completion(status=status, output=None, admission=Admission())
    return Completion(
        status=status,
        output=output,
        admission=admission(reply[1], reply[2], reply[4]),
        drained=bool(reply[3]),
    )


def ended_members(reply: list[Any]) -> tuple[int, bool, Admission]:
    """``end_members.lua``: {how many ended, drained, other runs' shares}."""
    count, drained, others = reply
    return int(count), bool(drained), admission([], [], others)


def renewals(replies: list[Any]) -> list[Renewal]:
    """``renew_lease.lua``, one {status, cancel reason} per lease."""
    return [Renewal(text(status), text(cancel)) for status, cancel in replies]


def sweep(reply: list[Any]) -> tuple[Sweep, int | None]:
    """``sweep_run.lua``: {state, cancel, republish, abandon, expire, first and last of the
    unstarted range, action, denied (member, reason) pairs, when to sweep it again or ''}:
    the sweep, and when the run's deadline comes before its next sweep (ms), else None."""
    state, cancel, republish, abandon, expire, first, last, action, denied, sweep_at = reply
    pairs = [(text(denied[i]), text(denied[i + 1])) for i in range(0, len(denied), 2)]
    return Sweep(
        state=text(state),
        cancel=text(cancel),
        republish=texts(republish),
        abandon=texts(abandon),
        expire=texts(expire),
        unstarted=range(int(first), int(last)),
        action=text(action),
        denied=pairs,
    ), int(sweep_at) if sweep_at else None


def repaired(reply: list[Any]) -> Admission:
    """``sweep_group.lua``: {slots freed, admitted, denied, other runs' shares}."""
    _, admitted, denied, others = reply
    return admission(admitted, denied, others)


def verdict(reply: list[Any]) -> tuple[str, str]:
    """A verdict and its reason ('' when none): ``gate_final.lua``."""
    outcome, *rest = reply
    return text(outcome), text(rest[0]) if rest else ""


def partial_admission(reply: list[Any]) -> PartialAdmission:
    """``admit_partial.lua``: {action} or {action, reason}, or {'done', stored output}."""
    action, *rest = reply
    action = text(action)
    if action == "done":
        return PartialAdmission(action, output=AgentOutput.model_validate_json(rest[0]))
    return PartialAdmission(action, reason=text(rest[0]) if rest else "")
