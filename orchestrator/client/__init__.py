"""The client: submit runs, follow them, cancel them. It sends tasks by name and never imports
the worker code, so it runs anywhere that reaches Redis and the broker."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any, Generic, TypeVar
from uuid import uuid4

import redis
from celery import Celery
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, ValidationError

from orchestrator import tracing
from orchestrator.config.celery_config import celery_config
from orchestrator.config.settings import Settings, load_settings, with_redis_url
from orchestrator.errors import (
    InvalidRunError,
    RunFailedError,
    RunNotFoundError,
    RunTimeoutError,
    WritesRefusedError,
)
from orchestrator.models import (
    TERMINAL_STATES,
    AgentOutput,
    AgentSpec,
    Budget,
    Message,
    RunRecord,
    RunStatus,
)
from orchestrator.models.input_limits import check_items, check_request_value
from orchestrator.models.learner_limits import record_over_limits
from orchestrator.models.requests import (
    AgentRunRequest,
    BranchesRequest,
    MapReduceRequest,
    RunRequest,
)
from orchestrator.models.results import AgentRunResult, MapReduceResult, ParallelResult
from orchestrator.plans import ExecutionPlan
from orchestrator.plans.agent_ids import check_agent_id
from orchestrator.plans.cache_plans import CachePlan
from orchestrator.plans.cache_store import CachePlanStore
from orchestrator.plans.store import PlanStore
from orchestrator.prices import price_known
from orchestrator.state import events as run_events
from orchestrator.state import groups as group_limits
from orchestrator.state.budget import Ledger, RunBudget
from orchestrator.state.connection import refusal_message, store_client, write_refusal
from orchestrator.state.events import ParallelLoopStart
from orchestrator.state.keys import RUN_ID, RunKeys, admit_task_id, new_run_id
from orchestrator.state.presence import live_names, live_tools, live_workers
from orchestrator.state.results import ended_result
from orchestrator.state.store import OUTPUT_PAGE, RunStore
from orchestrator.strategies import BUILTIN_STRATEGIES
from orchestrator.tools import ToolInfo

ResultT = TypeVar("ResultT", bound=BaseModel)
RequestT = TypeVar("RequestT", bound=BaseModel)
RESULT_MODELS: dict[str, type[BaseModel]] = {
    "map_reduce": MapReduceResult,
    "branches": ParallelResult,
    "agent": AgentRunResult,
}


def _checked_agent_id(agent_id: str) -> str:
    try:
        return check_agent_id(agent_id)
    except ValueError as invalid:
        raise InvalidRunError(str(invalid)) from None


def _validation_message(error: ValidationError) -> str:
    parts = []
    for issue in error.errors():
        where = ".".join(str(p) for p in issue["loc"]) or "request"
        # A validator's own message reads better without pydantic's "Value error, " before it.
        context = issue.get("ctx") or {}
        message = str(context["error"]) if issue["type"] == "value_error" else issue["msg"]
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


class Client:
    """Submits and follows runs.

    Parameters:
        redis_url: the Redis of run state (and broker and backend unless the settings name
            others); defaults to ``ORCHESTRATOR_REDIS_URL``.
        settings: full settings, for callers that build their own.

    Raises ``InvalidSettingsError`` (naming the variable, never its value: a URL may hold a
    password) when the settings or ``redis_url`` are invalid, and ``TracingConfigError`` when
    the ``OTEL_*`` variables ask for tracing this installation cannot do (see
    ``orchestrator/tracing.py``).
    """

    def __init__(self, redis_url: str | None = None, settings: Settings | None = None) -> None:
        base = settings or load_settings()
        self.settings = with_redis_url(base, redis_url) if redis_url else base
        self.redis = store_client(self.settings)
        self.store = RunStore(self.redis, self.settings)
        self.plans = PlanStore(self.redis)
        self.cache_plans = CachePlanStore(self.redis)
        self._celery = Celery("agent_orchestrator_client", set_as_current=False)
        self._celery.conf.update(celery_config(self.settings))
        tracing.configure()  # as the OTEL_* variables say; off without them

    def map_reduce(
        self,
        task: str,
        items: Sequence[str],
        mapper: AgentSpec | dict[str, Any],
        reducer: AgentSpec | dict[str, Any],
        max_concurrent: int = 5,
        budget: Budget | dict[str, Any] | None = None,
        deadline_s: float | None = None,
        group: str | None = None,
    ) -> RunHandle[MapReduceResult]:
        """Submit a map-reduce: one mapper agent per item, at most ``max_concurrent`` at once
        across all workers, then a reducer over their summaries.

        With ``group``, the mappers also share the limit of that concurrency group with every
        other run that names it, taking turns with them (see ``Client.groups()``); a group no
        live worker declares raises ``InvalidRunError``.

        Mapper ``i`` is named ``{mapper.name}_{i}`` and gets ``"{task}\\n\\nProcess this item:
        {item}"``. Raises ``InvalidRunError`` before anything is dispatched when the input is
        bad (no items, a cap below 1, an unknown provider, a negative budget, a
        ``max_cost_usd`` with a model whose price is not known).
        """
        if isinstance(items, str) or not isinstance(items, Sequence):
            raise InvalidRunError("items must be a list of strings")
        if not items:
            raise InvalidRunError("items must not be empty: a map-reduce needs at least one item")
        for position, item in enumerate(items):
            if not isinstance(item, str):
                raise InvalidRunError(f"items[{position}] is {type(item).__name__}, not a string")
        check_items(items)
        # One model validates everything, so each error names its place (budget.max_agents).
        request = self._validated(
            MapReduceRequest,
            task=task,
            mapper=mapper,
            reducer=reducer,
            max_concurrent=max_concurrent,
            budget=budget,
            deadline_s=deadline_s,
            item_count=len(items),
            group=group,
        )
        return self._submit(request, MapReduceResult, items=list(items))

    def parallel_branches(
        self,
        configs: Sequence[AgentSpec | dict[str, Any]],
        prompt: str | None = None,
        base_context: Sequence[Message | dict[str, Any]] | None = None,
        strategy: str = "pick_first",
        session_id: str | None = None,
        max_concurrent: int | None = None,
        budget: Budget | dict[str, Any] | None = None,
        judge: AgentSpec | dict[str, Any] | None = None,
        deadline_s: float | None = None,
        group: str | None = None,
    ) -> RunHandle[ParallelResult]:
        """Run every config from its own copy of ``base_context`` (plus ``prompt``), then let
        ``strategy`` select one branch.

        Strategies: ``transparent`` (exactly one config), ``pick_first``, ``token_efficient``,
        ``elaborate``, ``llm_judge`` (with ``judge``), or the name of a function the workers
        register with ``@strategy`` (see ``Client.strategies()``); any other name, an import
        path included, raises ``InvalidRunError`` listing the registered names.
        Branch loop ids are ``{session_id}.{config_segment}.{N}``; a session id is generated
        when none is given. Branches run under the same cap (default: all at once), budget
        gate and concurrency ``group`` as map-reduce mappers.
        """
        if isinstance(configs, dict | AgentSpec) or not isinstance(configs, Sequence):
            raise InvalidRunError("configs must be a list of agent specs")
        self._check_strategy(strategy)
        request = self._validated(
            BranchesRequest,
            configs=list(configs),
            prompt=prompt,
            base_context=list(base_context or []),
            strategy=strategy,
            judge=judge,
            session_id=session_id or uuid4().hex,
            max_concurrent=max_concurrent or max(1, len(configs)),
            budget=budget,
            deadline_s=deadline_s,
            group=group,
        )
        start = ParallelLoopStart(
            run_id="", session_id=request.session_id, loop_ids=request.loop_ids
        )
        return self._submit(request, ParallelResult, first_events=(start,))

    def run_agent(
        self,
        spec: AgentSpec | dict[str, Any],
        prompt: str | None = None,
        context: Sequence[Message | dict[str, Any]] | None = None,
        session_id: str | None = None,
        budget: Budget | dict[str, Any] | None = None,
        deadline_s: float | None = None,
        group: str | None = None,
    ) -> RunHandle[AgentRunResult]:
        """Run one agent on ``context`` plus ``prompt``. With ``prompt=None`` it continues
        ``context``, which must be non-empty and must not end on an assistant message. The
        result has ``.output`` and ``.context`` (feed it back to continue the session). With
        ``group``, the agent waits for a slot of that concurrency group."""
        request = self._validated(
            AgentRunRequest,
            spec=spec,
            prompt=prompt,
            context=list(context or []),
            session_id=session_id or uuid4().hex,
            max_concurrent=1,
            budget=budget,
            deadline_s=deadline_s,
            group=group,
        )
        return self._submit(request, AgentRunResult)

    @staticmethod
    def _validated(model: type[RequestT], **fields: Any) -> RequestT:
        if fields.get("budget") is None:
            fields["budget"] = Budget()
        check_request_value(fields, "")
        try:
            return model.model_validate(fields)
        except ValidationError as error:
            raise InvalidRunError(_validation_message(error)) from None

    def _submit(
        self,
        request: RunRequest,
        result_model: type[ResultT],
        items: list[str] | None = None,
        first_events: tuple[run_events.Event, ...] = (),
    ) -> RunHandle[ResultT]:
        specs: list[AgentSpec | None]
        if isinstance(request, MapReduceRequest):
            specs = [request.mapper, request.reducer]
        elif isinstance(request, BranchesRequest):
            specs = [*request.configs, request.judge]
        else:
            specs = [request.spec]
        self._check_prices(request.budget, specs)
        self._check_tools(specs)
        self._check_agents(specs)
        self._check_endpoints(specs)
        self._check_group(request.group)
        run_id = new_run_id(request.group)
        for event in first_events:
            event.run_id = run_id
        # The run's trace starts here: every span of the run, on any worker, hangs from this
        # one, whose traceparent is kept with the run.
        name = f"invoke_workflow {request.kind}"
        attributes = tracing.workflow_attributes(run_id, request.kind, request.member_count)
        with tracing.span_under(None, name, attributes, SpanKind.PRODUCER):
            traceparent = tracing.current_traceparent()
            try:
                self.store.create_run(run_id, request, items, first_events, traceparent)
                self._celery.send_task(
                    "tasks.coordinator.admit_run",
                    args=(run_id,),
                    task_id=admit_task_id(run_id),
                    queue="coordinator",
                )
            except Exception as error:
                refused = write_refusal(error)
                if refused is None:
                    raise
                # Whatever was written goes (deleting is what a full Redis still allows): a
                # run left pending would be admitted by a sweep, though its submit failed.
                self.store.discard(run_id)
                message = f"Redis refuses writes: {refusal_message(refused)} (nothing submitted)"
                raise WritesRefusedError(message) from None
        return RunHandle(self, run_id, result_model)

    def plan(self, agent_id: str) -> ExecutionPlan | None:
        """The plan the learners keep for ``agent_id`` (None until one was learned)."""
        return self.plans.get(_checked_agent_id(agent_id))

    def reset_plan(self, agent_id: str) -> bool:
        """Forget the plan of ``agent_id``; True when there was one."""
        return self.plans.reset(_checked_agent_id(agent_id))

    def cache_plan(self, agent_id: str) -> CachePlan | None:
        """What the cache learner knows of ``agent_id``'s prompts, per learning key (model,
        surface, tool set); None until one of its model calls was learned."""
        return self.cache_plans.get(_checked_agent_id(agent_id))

    def reset_cache_plan(self, agent_id: str) -> bool:
        """Forget what the cache learner knows of ``agent_id``'s prompts (its requests go out
        without hints until it has learned again); True when there was something."""
        return self.cache_plans.reset(_checked_agent_id(agent_id))

    def record_run(self, record: RunRecord | dict[str, Any]) -> None:
        """Feed a run record from outside (another framework's telemetry) to the learners.
        Raises ``InvalidRunError`` when it is not a valid ``RunRecord``."""
        try:
            valid = RunRecord.model_validate(record)
        except ValidationError as error:
            raise InvalidRunError(f"invalid run record: {_validation_message(error)}") from None
        problem = record_over_limits(valid)
        if problem is not None:
            raise InvalidRunError(f"run record over the learners' limits: {problem}")
        self.send_records([valid.model_dump(mode="json")])

    def send_records(self, records: list[Any]) -> None:
        """Send raw records to the learners as they are; the learners validate them and
        count the ones they reject."""
        self._celery.send_task("tasks.learner.ingest", args=(records,), queue="learner")

    def tools(self) -> list[ToolInfo]:
        """The tools the live workers serve (each publishes its own, kept with its presence)."""
        return live_tools(self.redis)

    def _check_tools(self, specs: list[AgentSpec | None]) -> None:
        wanted = {name for spec in specs if spec is not None for name in spec.tools}
        if not wanted:
            return
        served = {info.name for info in self.tools()}
        unknown = sorted(wanted - served)
        if unknown:
            offer = ", ".join(sorted(served)) or "none: no worker serves tools"
            raise InvalidRunError(f"unknown tool {', '.join(map(repr, unknown))} (served: {offer})")

    def _check_prices(self, budget: Budget, specs: list[AgentSpec | None]) -> None:
        # A model without a price costs 0, so a cost limit would never bind on it: refuse the
        # run rather than let it spend without a limit.
        if budget.max_cost_usd is None:
            return
        unpriced = dict.fromkeys(
            f"{spec.model.provider}:{spec.model.model}"
            for spec in specs
            if spec is not None and not price_known(spec.model, overrides=self.settings.prices)
        )
        if unpriced:
            raise InvalidRunError(
                f"budget.max_cost_usd needs a price for {', '.join(unpriced)}; none is known "
                "(add it to ORCHESTRATOR_PRICES)"
            )

    def endpoints(self) -> list[str]:
        """The endpoints the live workers declare (names only: URLs and keys stay on them)."""
        return live_names(self.redis, "endpoints")

    def _check_endpoints(self, specs: list[AgentSpec | None]) -> None:
        wanted = {spec.model.endpoint for spec in specs if spec is not None and spec.model.endpoint}
        if not wanted:
            return
        served = set(self.endpoints())
        unknown = sorted(wanted - served)
        if unknown:
            offer = ", ".join(sorted(served)) or "none"
            raise InvalidRunError(
                f"model.endpoint: unknown endpoint {', '.join(map(repr, unknown))} "
                f"(declared on the workers: {offer})"
            )

    def groups(self) -> dict[str, int]:
        """The concurrency groups the live workers declare, with the limit that holds for each:
        the lowest a live worker declares (``ORCHESTRATOR_GROUP_LIMITS``)."""
        return group_limits.live_limits(self.redis)

    def _check_group(self, name: str | None) -> None:
        if name is None or group_limits.limit(self.redis, name) is not None:
            return
        offer = ", ".join(sorted(self.groups())) or "none"
        raise InvalidRunError(
            f"group: unknown concurrency group {name!r} (declared on the workers: {offer})"
        )

    def strategies(self) -> list[str]:
        """The strategies a run may name: the built-ins, then those the live workers
        register with ``@strategy`` in their ``ORCHESTRATOR_STRATEGY_MODULES``."""
        return [*BUILTIN_STRATEGIES, *live_names(self.redis, "strategies")]

    def _check_strategy(self, name: str) -> None:
        if name in BUILTIN_STRATEGIES:
            return
        registered = live_names(self.redis, "strategies")
        if name not in registered:
            offer = ", ".join(registered) or "none"
            raise InvalidRunError(
                f"strategy: unknown strategy {name!r} (registered on the workers: {offer}; "
                f"built-in: {', '.join(BUILTIN_STRATEGIES)})"
            )

    def agents(self) -> list[str]:
        """The agent functions the live workers register with ``@agent`` (in their
        ``ORCHESTRATOR_MODULES``), which an ``AgentSpec.agent`` may name."""
        return live_names(self.redis, "agents")

    def _check_agents(self, specs: list[AgentSpec | None]) -> None:
        wanted = {spec.agent for spec in specs if spec is not None and spec.agent}
        if not wanted:
            return
        registered = self.agents()
        unknown = sorted(wanted - set(registered))
        if unknown:
            offer = ", ".join(registered) or "none"
            raise InvalidRunError(
                f"agent: unknown agent function {', '.join(map(repr, unknown))} "
                f"(registered on the workers: {offer})"
            )

    def get_run(self, run_id: str) -> RunHandle[Any]:
        """Attach to an existing run (from any process); ``RunNotFoundError`` if there is none.
        A run id is what ``Client`` makes (32 hex digits): anything else names no run, and
        never another key of one (``{run_id}:items``)."""
        if not RUN_ID.match(run_id):
            raise RunNotFoundError(f"no run with id {run_id!r}")
        status = self.store.status(run_id)
        if status is None:
            raise RunNotFoundError(f"no run with id {run_id!r}")
        return RunHandle(self, run_id, RESULT_MODELS[status.kind])

    def workers(self) -> list[str]:
        """Host names of the live workers (each refreshes its presence every sweep)."""
        return live_workers(self.redis)

    def send_cancel(self, run_id: str) -> None:
        self._celery.send_task("tasks.coordinator.cancel_run", args=(run_id,), queue="coordinator")


class RunHandle(Generic[ResultT]):
    """A submitted run: its id, status, events, result and cancel."""

    def __init__(self, client: Client, run_id: str, result_model: type[ResultT]) -> None:
        self.client = client
        self.id = run_id
        self._result_model = result_model

    def __repr__(self) -> str:
        return f"RunHandle({self.id!r})"

    def status(self) -> RunStatus:
        """State (``pending|running|succeeded|failed|cancelled``) and counts by outcome."""
        status = self.client.store.status(self.id)
        if status is None:
            raise RunNotFoundError(f"no run with id {self.id!r}")
        return status

    def budget(self) -> Ledger:
        """The run's budget now: its limits, what its model calls spent, and what the calls in
        flight have reserved. Calls are counted in runs with ``max_tokens`` or
        ``max_cost_usd`` (a run without either keeps no ledger of its calls; its outputs
        report their usage)."""
        if not self.client.store.exists(self.id):
            raise RunNotFoundError(f"no run with id {self.id!r}")
        return RunBudget(self.client.redis, self.id).ledger()

    def events(self, follow: bool = True) -> Iterator[run_events.Event]:
        """The run's events from the first; with ``follow``, live until ``RunEnd``."""
        return run_events.follow(self.client.redis, self.id, follow=follow)

    def wait(self, timeout: float | None = None) -> RunStatus:
        """Block until the run ends (woken by its event stream, not by polling).

        A Redis outage is waited out until ``timeout``; then ``RunTimeoutError`` says Redis
        was unreachable. A run that vanished (a flushed Redis, or one restarted without
        persistence) raises ``RunNotFoundError``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        done = RunKeys(self.id).done
        while True:
            remaining = 1.0 if deadline is None else deadline - time.monotonic()
            try:
                status = self.status()
                if status.state in TERMINAL_STATES:
                    return status
                if remaining <= 0:
                    raise RunTimeoutError(f"run {self.id} did not end within {timeout} s")
                # The done stream gets one entry when the run ends: any number of waiters
                # block on it, however busy the run, and one that arrives late finds it there.
                block_ms = max(1, int(min(remaining, 1.0) * 1000))
                self.client.redis.xread({done: "0-0"}, count=1, block=block_ms)
            except (redis.ConnectionError, redis.TimeoutError) as outage:
                if remaining <= 0:
                    raise RunTimeoutError(
                        f"run {self.id} did not end within {timeout} s: Redis is unreachable "
                        f"({type(outage).__name__})"
                    ) from None
                time.sleep(min(0.5, max(remaining, 0.01)))

    def result(self, timeout: float | None = None) -> ResultT:
        """Wait for the run and return its result. A cancelled run returns the outputs it has;
        a failed run raises ``RunFailedError`` (whose ``result`` holds what it has).

        The result is built from what the run keeps, its outputs read in pages and parsed one
        by one (see ``outputs``): a run of any size is never one JSON document."""
        status = self.wait(timeout)
        built = ended_result(self.client.store, self.id)
        result = self._result_model.model_validate(built) if built is not None else None
        if status.state == "failed":
            raise RunFailedError(self.id, status.error, result)
        if result is None:
            raise RunFailedError(self.id, "the run ended without a result")
        return result

    def outputs(
        self, start: int = 0, stop: int | None = None, page_size: int = OUTPUT_PAGE
    ) -> Iterator[AgentOutput]:
        """The outputs of members ``start`` to ``stop - 1`` (by default, to the last member),
        in member order: mappers in item order, branches in config order (a reducer's or a
        judge's output is not among them).

        They are read from Redis ``page_size`` at a time and parsed one by one, so that a run of
        any size can be gone through in little memory. During a run, members that have not
        ended yet are skipped (a mapper's ``name`` ends with its index); once the run ended,
        every member has an output. Raises ``RunNotFoundError`` when the run does not exist,
        ``ValueError`` for a negative ``start`` or ``stop`` or a ``page_size`` below 1."""
        if not self.client.store.exists(self.id):
            raise RunNotFoundError(f"no run with id {self.id!r}")
        indexed = self.client.store.indexed_outputs(self.id, start, stop, page_size)
        return (output for _, output in indexed)

    def cancel(self, reason: str = "cancelled by the user") -> bool:
        """Stop the run: queued members are revoked, running ones are interrupted (a model
        call in flight is aborted), the rest end ``cancelled`` at once. True while the run has
        not ended (also when a deadline already flagged it), False when it had ended."""
        flagged = self.client.store.request_cancel(self.id, reason)
        if flagged:
            self.client.send_cancel(self.id)
        return flagged
