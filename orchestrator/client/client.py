"""The client: submit runs, follow them, cancel them. It sends tasks by name and never imports
the worker code, so it runs anywhere that reaches Redis and the broker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar
from uuid import uuid4

import redis
from pydantic import BaseModel, ValidationError

from orchestrator import tracing
from orchestrator.client import checks
from orchestrator.client.connections import ClientConnections
from orchestrator.client.handle import RunHandle
from orchestrator.client.listings import WorkerListings
from orchestrator.client.submit import submit
from orchestrator.client.validation import checked_agent_id, validated, validation_message
from orchestrator.config.settings import Settings, load_settings, with_redis_url
from orchestrator.errors import InvalidRunError, RunNotFoundError
from orchestrator.models import AgentSpec, Budget, Message, RunRecord
from orchestrator.models.items import item_texts
from orchestrator.models.learner_limits import record_over_limits
from orchestrator.models.requests import (
    AgentRunRequest,
    BranchesRequest,
    MapReduceRequest,
    RunRequest,
)
from orchestrator.models.results import AgentRunResult, MapReduceResult, ParallelResult
from orchestrator.plans import ExecutionPlan
from orchestrator.plans.cache_plans import CachePlan
from orchestrator.plans.cache_store import CachePlanStore
from orchestrator.plans.store import PlanStore
from orchestrator.state import events as run_events
from orchestrator.state.events import ParallelLoopStart
from orchestrator.state.keys import RUN_ID
from orchestrator.state.store import RunStore

ResultT = TypeVar("ResultT", bound=BaseModel)
RESULT_MODELS: dict[str, type[BaseModel]] = {
    "map_reduce": MapReduceResult,
    "branches": ParallelResult,
    "agent": AgentRunResult,
}


class Client(WorkerListings):
    """Submits and follows runs.

    Parameters:
        redis_url: the Redis of run state (and broker and backend unless the settings name
            others); defaults to ``ORCHESTRATOR_REDIS_URL``.
        settings: full settings, for callers that build their own.

    Raises ``InvalidSettingsError`` (naming the variable, never its value: a URL may hold a
    password) when the settings or ``redis_url`` are invalid, and ``TracingConfigError`` when
    the ``OTEL_*`` variables ask for tracing this installation cannot do (see
    ``orchestrator/tracing.py``).

    A client holds Redis connections and broker connections: ``close()`` closes them, and
    ``with Client() as client:`` closes them when the block ends. Clients of the same Redis
    in one process share a connection pool, which the last of them to close closes (see
    ``orchestrator/client/connections.py``). Runs go on without their client.
    """

    def __init__(self, redis_url: str | None = None, settings: Settings | None = None) -> None:
        base = settings or load_settings()
        self.settings = with_redis_url(base, redis_url) if redis_url else base
        # Before anything is opened: a client that fails here holds no connection.
        tracing.configure()  # as the OTEL_* variables say; off without them
        self._connections = ClientConnections(self.settings)
        self._celery = self._connections.sender().app
        held = self._connections.redis()
        self._store = RunStore(held, self.settings)
        self._plans, self._cache_plans = PlanStore(held), CachePlanStore(held)

    @property
    def redis(self) -> redis.Redis:
        """The Redis client of run state (``ClientClosedError`` once the client is closed)."""
        return self._connections.redis()

    @property
    def store(self) -> RunStore:
        """The run store (``ClientClosedError`` once the client is closed)."""
        self._connections.redis()
        return self._store

    @property
    def plans(self) -> PlanStore:
        """The learners' execution plans (``ClientClosedError`` once the client is closed)."""
        self._connections.redis()
        return self._plans

    @property
    def cache_plans(self) -> CachePlanStore:
        """The cache learner's plans (``ClientClosedError`` once the client is closed)."""
        self._connections.redis()
        return self._cache_plans

    def close(self) -> None:
        """Close this client's connections: its broker connections, and its Redis pool once
        no other open client of the same Redis in this process uses it. Calling it again does
        nothing. The client and its run handles cannot be used afterwards (they raise
        ``ClientClosedError``); the runs it submitted go on (get them again with another
        client's ``get_run``)."""
        self._connections.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def map_reduce(
        self,
        task: str,
        items: Sequence[Any],
        mapper: AgentSpec | dict[str, Any],
        reducer: AgentSpec | dict[str, Any] | str,
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

        Items are JSON values: mapper ``i`` is ``{mapper.name}_{i}`` on ``"{task}\\n\\nProcess
        this item: {item}"``, a string item as it is, any other as its compact JSON. ``reducer``
        is an agent, or the name of a ``@reducer`` function the workers serve (``reducers()``),
        whose return value is the result's ``reduced_data``. Raises ``InvalidRunError`` before
        anything is dispatched when the input is bad (no items, an item that is not JSON, a cap
        below 1, an unknown provider or reducer function, a negative budget, a ``max_cost_usd``
        with a model whose price is not known).
        """
        texts = item_texts(items)
        function = checks.reducer_function(self.redis, reducer)
        # One model validates everything, so each error names its place (budget.max_agents).
        request = validated(
            MapReduceRequest,
            task=task,
            mapper=mapper,
            reducer=None if function is not None else reducer,
            reducer_function=function,
            max_concurrent=max_concurrent,
            budget=budget,
            deadline_s=deadline_s,
            item_count=len(texts),
            group=group,
        )
        return self._submit(request, MapReduceResult, items=texts)

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
        checks.check_strategy(self.redis, strategy)
        request = validated(
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
        request = validated(
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

    def _submit(
        self,
        request: RunRequest,
        result_model: type[ResultT],
        items: list[str] | None = None,
        first_events: tuple[run_events.Event, ...] = (),
    ) -> RunHandle[ResultT]:
        run_id = submit(
            self.store, self.settings, self._connections.sender(), request, items, first_events
        )
        return RunHandle(self, run_id, result_model)

    def plan(self, agent_id: str) -> ExecutionPlan | None:
        """The plan the learners keep for ``agent_id`` (None until one was learned)."""
        return self.plans.get(checked_agent_id(agent_id))

    def reset_plan(self, agent_id: str) -> bool:
        """Forget the plan of ``agent_id``; True when there was one."""
        return self.plans.reset(checked_agent_id(agent_id))

    def cache_plan(self, agent_id: str) -> CachePlan | None:
        """What the cache learner knows of ``agent_id``'s prompts, per learning key (model,
        surface, tool set); None until one of its model calls was learned."""
        return self.cache_plans.get(checked_agent_id(agent_id))

    def reset_cache_plan(self, agent_id: str) -> bool:
        """Forget what the cache learner knows of ``agent_id``'s prompts (its requests go out
        without hints until it has learned again); True when there was something."""
        return self.cache_plans.reset(checked_agent_id(agent_id))

    def record_run(self, record: RunRecord | dict[str, Any]) -> None:
        """Feed a run record from outside (another framework's telemetry) to the learners.
        Raises ``InvalidRunError`` when it is not a valid ``RunRecord``."""
        try:
            valid = RunRecord.model_validate(record)
        except ValidationError as error:
            raise InvalidRunError(f"invalid run record: {validation_message(error)}") from None
        problem = record_over_limits(valid)
        if problem is not None:
            raise InvalidRunError(f"run record over the learners' limits: {problem}")
        self.send_records([valid.model_dump(mode="json")])

    def send_records(self, records: list[Any]) -> None:
        """Send raw records to the learners as they are; the learners validate them and
        count the ones they reject."""
        self._connections.sender().send("tasks.learner.ingest", (records,), queue="learner")

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

    def send_cancel(self, run_id: str) -> None:
        self._connections.sender().send(
            "tasks.coordinator.cancel_run", (run_id,), queue="coordinator"
        )
