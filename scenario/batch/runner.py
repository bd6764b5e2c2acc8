"""``run_batch``: many runs of many scenarios, bounded, retried, cancellable, rolled up.

Shape of a batch: one dispatcher task walks the planned runs in order, takes a slot from the
concurrency strategy for each and starts a task for it; each run task makes fresh agents, runs
the engine (on a worker thread's own loop for ``executor="thread"``, on this loop for
``"loop"``), retries the whole run on a transient error if asked, gives back its slot and hands
the finished record to ``on_run_finished`` before counting it. Nothing waits for a slot as a
task, so a million-run plan costs one task per run *in flight*, not per run planned.

Stopping (fail-fast, an ``on_run_finished`` error, or the batch's own task being cancelled, as
Ctrl-C does under ``asyncio.run``) cancels the dispatcher and the runs in flight; each cancelled
run unwinds its engine (its worker loop and thread too) and is recorded as ``cancelled``, and the
partial result is returned. Finished runs are never dropped: they were delivered as they ended.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import sys
import time
from typing import Any, Callable, Collection, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

from .. import live, telemetry
from ..concurrency import ConcurrencyStrategy, SlidingWindow, current_strategy
from ..engine import ScenarioEngine, build_spec
from ..errors import ModelCallError, ScenarioConfigError
from ..executors import run_engine
from ..records import AttemptInfo, BatchResult, RunRecord
from ..types import ScenarioResult, Usage
from .spec import AgentRecipe, RunUnit, Scenario, check_rate, check_runs, check_timeout, normalize_variants, plan_units

#: Runs in flight when neither ``max_concurrency`` nor ``concurrency`` is given.
DEFAULT_MAX_CONCURRENCY = 20
#: Seconds past a run's timeout before the batch stops waiting for the engine to enforce it
#: (a synchronous adapter blocking its worker loop cannot be interrupted from inside).
BACKSTOP_GRACE = 5.0
EXECUTORS = ("thread", "loop")
ON_ERROR = ("continue", "fail_fast")

SPAN_BATCH = "scenario.batch"
SPAN_BATCH_RUN = "scenario.batch.run"

RunFinishedHook = Callable[[RunRecord], Any]


@dataclasses.dataclass
class BatchConfig:
    """Validated ``run_batch`` arguments (everything checked before anything runs)."""

    scenarios: List[Scenario]
    variants: Dict[str, Any]
    runs: int
    executor: str
    strategy: ConcurrencyStrategy
    retry_policy: Any  # scenario.retry.RetryPolicy; max_attempts = retries + 1
    timeout: Optional[float]
    on_error: str
    min_pass_rate: Optional[float]
    on_run_finished: Optional[RunFinishedHook]
    suite: str
    skip: Collection[str]
    shard_index: Optional[int]
    shard_count: Optional[int]
    processes: int
    units: List[RunUnit] = dataclasses.field(default_factory=list)
    skipped: int = 0

    @property
    def max_attempts(self) -> int:
        return self.retry_policy.max_attempts


async def run_batch(
    scenarios: Sequence[Scenario],
    runs: int = 1,
    *,
    variants: Union[Mapping[str, Any], Sequence[Any], None] = None,
    agents: Union[Mapping[str, Any], Sequence[Any], None] = None,
    executor: str = "thread",
    max_concurrency: Optional[int] = None,
    concurrency: Optional[ConcurrencyStrategy] = None,
    retries: Any = 0,
    timeout: Optional[float] = None,
    on_error: str = "continue",
    min_pass_rate: Optional[float] = None,
    on_run_finished: Optional[RunFinishedHook] = None,
    suite: str = "",
    skip: Optional[Collection[str]] = None,
    shard_index: Optional[int] = None,
    shard_count: Optional[int] = None,
    processes: int = 1,
    store: Any = None,
    resume: Union[bool, str, None] = None,
) -> BatchResult:
    """Run every scenario ``runs`` times (with every variant) and roll the results up.

    Args:
        scenarios: :class:`scenario.Scenario` specs; names must be unique.
        runs: repetitions of each scenario (a scenario's own ``runs`` wins).
        variants: several agents under test, each run on every scenario: ``{name: factory}`` or a
            list of factories (named after them). A factory is a zero-argument callable (or class)
            returning the agent-under-test adapter or a list of adapters; its adapters replace the
            scenario's adapters of the same roles. ``agents=`` is the same option.
        executor: ``"thread"`` (each run as ``scenario.run``: a worker thread with its own loop) or
            ``"loop"`` (each run as ``scenario.arun``: on this loop).
        max_concurrency: runs in flight at most (default 20); or pass ``concurrency=`` a strategy
            (``scenario.SlidingWindow(n)``, ``scenario.Adaptive(...)``), shared with other batches if
            you like. Rate limits (``configure(rate_limits=...)``) apply on top, per model call.
        retries: re-run a whole scenario whose run ended on a transient error (rate limit,
            timeout, connection, 5xx; never a 4xx or a bug in the agent) up to this many times,
            with exponential backoff and jitter honouring Retry-After; or a ``scenario.RetryPolicy``.
        timeout: seconds per run (a scenario's own ``timeout`` wins); a run past it is cancelled
            and recorded as ``timeout``.
        on_error: ``"continue"`` records a run's error and goes on; ``"fail_fast"`` stops at the
            first run that errors or times out (failed verdicts do not stop a batch), cancels the
            runs in flight and returns the partial result.
        min_pass_rate: pass rate the batch needs (default: every run passes); see
            :meth:`scenario.BatchResult.from_records` for how per-scenario thresholds combine.
        on_run_finished: called (sync or async) with each finished run's record *before* it is
            counted: persist it here and an interrupted batch loses nothing. If it raises, the batch
            stops and the exception propagates.
        suite: suite name, part of every run id (:func:`scenario.records.run_id`).
        skip: run ids to leave out (already finished in a result store).
        shard_index, shard_count: run only shard ``shard_index`` of ``shard_count`` (runs dealt
            round-robin in plan order), for the CLI and pytest-xdist.
        processes: spread the batch over this many worker processes (POSIX fork); see docs/batch.md.
        store: a :class:`scenario.ResultStore` (or a path to one): the batch is recorded in it as a
            new batch, each finished run written before ``on_run_finished`` sees it.
        resume: with ``store``, continue a batch instead of starting one: ``True`` for the latest
            interrupted batch of ``suite``, or a batch id. Runs it finished with a verdict and an
            unchanged fingerprint are kept; errored, missing and changed ones run. The result then
            covers the whole batch, kept runs included.

    Returns:
        A :class:`scenario.BatchResult`. If the task awaiting this is cancelled (Ctrl-C under
        ``asyncio.run``), the runs in flight are cancelled and the partial result is returned
        with ``cancelled=True`` instead of raising.

    Raises:
        scenario.ScenarioConfigError: bad arguments, an agent factory that fails, or a batch to
            resume that does not exist, before any run starts.
    """
    if resume and store is None:
        raise ScenarioConfigError(
            f"run_batch(resume={resume!r}): resuming needs the store holding the batch; pass store=ResultStore(path)."
        )
    config = prepare_batch(
        scenarios, runs, variants=variants, agents=agents, executor=executor, max_concurrency=max_concurrency,
        concurrency=concurrency, retries=retries, timeout=timeout, on_error=on_error, min_pass_rate=min_pass_rate,
        on_run_finished=on_run_finished, suite=suite, skip=skip, shard_index=shard_index, shard_count=shard_count,
        processes=processes,
    )
    if store is not None:
        from .stored import StoredBatch

        return await StoredBatch.open(store, config, resume=resume).execute()
    return await execute_batch(config)


async def execute_batch(config: BatchConfig) -> BatchResult:
    """Run a prepared batch on the backend it asks for (this loop, or forked processes)."""
    if config.processes > 1 and len(config.units) > 1:
        from ..sharding import run_in_processes

        return await run_in_processes(config)
    return await BatchRunner(config).execute()


# ---------------------------------------------------------------------------------------------
# Validation


def prepare_batch(
    scenarios: Sequence[Scenario],
    runs: int = 1,
    *,
    variants: Any = None,
    agents: Any = None,
    executor: str = "thread",
    max_concurrency: Optional[int] = None,
    concurrency: Optional[ConcurrencyStrategy] = None,
    retries: Any = 0,
    timeout: Optional[float] = None,
    on_error: str = "continue",
    min_pass_rate: Optional[float] = None,
    on_run_finished: Optional[RunFinishedHook] = None,
    suite: str = "",
    skip: Optional[Collection[str]] = None,
    shard_index: Optional[int] = None,
    shard_count: Optional[int] = None,
    processes: int = 1,
) -> BatchConfig:
    """Check every argument and every scenario x variant's agents; plan the runs."""
    if isinstance(scenarios, Scenario):
        raise ScenarioConfigError("run_batch(scenarios=...): pass a list of scenario.Scenario, e.g. run_batch([spec]).")
    if not isinstance(scenarios, (list, tuple)):
        raise ScenarioConfigError(
            f"run_batch(scenarios=...): expected a list of scenario.Scenario specs, got {type(scenarios).__name__}."
        )
    if not scenarios:
        raise ScenarioConfigError("run_batch(scenarios=[]): the list is empty; pass at least one scenario.Scenario(...).")
    names: Set[str] = set()
    for position, spec in enumerate(scenarios):
        if not isinstance(spec, Scenario):
            raise ScenarioConfigError(
                f"run_batch: scenarios[{position}] is a {type(spec).__name__}, not a scenario.Scenario. Wrap the run() "
                "arguments: scenario.Scenario(name=..., description=..., agents=[...])."
            )
        if spec.name in names:
            raise ScenarioConfigError(
                f"run_batch: two scenarios are named {spec.name!r}; names identify runs in results and stores, so "
                "they must be unique."
            )
        names.add(spec.name)
    check_runs(runs, "run_batch(runs=...)")
    if executor not in EXECUTORS:
        raise ScenarioConfigError(
            f"run_batch(executor={executor!r}): unknown executor; use 'thread' (each run on a worker thread, like "
            "scenario.run) or 'loop' (each run on this event loop, like scenario.arun)."
        )
    if on_error not in ON_ERROR:
        raise ScenarioConfigError(
            f"run_batch(on_error={on_error!r}): use 'continue' (record errors and go on) or 'fail_fast' (stop at the "
            "first error)."
        )
    strategy = _strategy(max_concurrency, concurrency)
    policy = _retry_policy(retries)
    if timeout is not None:
        timeout = check_timeout(timeout, "run_batch(timeout=...)")
    if min_pass_rate is not None:
        min_pass_rate = check_rate(min_pass_rate, "run_batch(min_pass_rate=...)")
    if on_run_finished is not None and not callable(on_run_finished):
        raise ScenarioConfigError(
            f"run_batch(on_run_finished=...): expected a function taking a RunRecord, got {type(on_run_finished).__name__}."
        )
    if not isinstance(suite, str):
        raise ScenarioConfigError(f"run_batch(suite=...): expected a string, got {type(suite).__name__}.")
    shard_index, shard_count = _shard(shard_index, shard_count)
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ScenarioConfigError(f"run_batch(processes={processes!r}): must be an integer >= 1.")
    if variants is not None and agents is not None:
        raise ScenarioConfigError("run_batch: give variants= or agents= (the same option), not both.")
    named = normalize_variants(variants if variants is not None else agents, "variants" if variants is not None else "agents")

    recipes: Dict[Tuple[str, str], AgentRecipe] = {}
    for spec in scenarios:
        wanted = list(named) if spec.variants is None else spec.variants
        unknown = [v for v in wanted if v not in named]
        if unknown:
            raise ScenarioConfigError(
                f"scenario {spec.name!r}: variants {unknown} are not in the batch; it has {list(named)}."
            )
        for variant in wanted:
            recipe = AgentRecipe(spec, named[variant], variant)
            probe = recipe.probe(min_pass_rate=min_pass_rate, timeout=timeout)
            try:
                build_spec(**spec.run_kwargs(probe, timeout=timeout))
            except ScenarioConfigError as exc:
                suffix = f" (variant {variant!r})" if variant in named and len(named) > 1 else ""
                raise ScenarioConfigError(f"{exc}{suffix}") from None
            recipes[(spec.name, variant)] = recipe

    units = plan_units(scenarios, recipes, list(named), runs, suite)
    if shard_count is not None:
        from ..sharding import select_shard

        units = select_shard(units, shard_index or 0, shard_count)
    skipped = 0
    skip_ids = set(skip or ())
    if skip_ids:
        before = len(units)
        units = [u for u in units if u.id not in skip_ids]
        skipped = before - len(units)
    return BatchConfig(
        scenarios=list(scenarios), variants=named, runs=runs, executor=executor, strategy=strategy,
        retry_policy=policy, timeout=timeout, on_error=on_error, min_pass_rate=min_pass_rate,
        on_run_finished=on_run_finished, suite=suite, skip=skip_ids, shard_index=shard_index,
        shard_count=shard_count, processes=processes, units=units, skipped=skipped,
    )


def _strategy(max_concurrency: Any, concurrency: Any) -> ConcurrencyStrategy:
    if max_concurrency is not None and concurrency is not None:
        raise ScenarioConfigError(
            "run_batch: give max_concurrency=N or concurrency=<strategy>, not both "
            "(max_concurrency=N is concurrency=scenario.SlidingWindow(N))."
        )
    if concurrency is not None:
        if not isinstance(concurrency, ConcurrencyStrategy):
            raise ScenarioConfigError(
                f"run_batch(concurrency=...): expected a strategy such as scenario.SlidingWindow(10) or "
                f"scenario.Adaptive(), got {type(concurrency).__name__}. For a number, use max_concurrency=."
            )
        return concurrency
    if max_concurrency is None:
        return SlidingWindow(DEFAULT_MAX_CONCURRENCY)
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise ScenarioConfigError(
            f"run_batch(max_concurrency={max_concurrency!r}): must be an integer >= 1 (runs in flight at once)."
        )
    return SlidingWindow(max_concurrency)


def _retry_policy(retries: Any) -> Any:
    from ..config import settings
    from ..retry import RetryPolicy

    if isinstance(retries, RetryPolicy):
        return retries
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ScenarioConfigError(
            f"run_batch(retries={retries!r}): must be an integer >= 0 (extra attempts of a run that ended on a "
            "transient error) or a scenario.RetryPolicy."
        )
    # The backoff shape of the configured model-call policy, with this many attempts.
    base = settings().retry or RetryPolicy()
    return dataclasses.replace(base, max_attempts=retries + 1)


def _shard(index: Any, count: Any) -> Tuple[Optional[int], Optional[int]]:
    if index is None and count is None:
        return None, None
    if count is None or index is None:
        raise ScenarioConfigError("run_batch: give shard_index and shard_count together (e.g. shard_index=0, shard_count=4).")
    for name, value in (("shard_count", count), ("shard_index", index)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioConfigError(f"run_batch({name}={value!r}): must be an integer.")
    if count < 1 or not (0 <= index < count):
        raise ScenarioConfigError(
            f"run_batch(shard_index={index}, shard_count={count}): need shard_count >= 1 and 0 <= shard_index < shard_count."
        )
    return index, count


# ---------------------------------------------------------------------------------------------
# Running


@dataclasses.dataclass
class _Outcome:
    result: Optional[ScenarioResult]
    exception: Optional[BaseException]
    status: str
    where: Optional[str] = None


def _is_timeout(exc: Optional[BaseException]) -> bool:
    return isinstance(exc, (TimeoutError, asyncio.TimeoutError))


async def _with_backstop(awaitable: Any, seconds: float) -> Any:
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)  # pragma: no cover - Python 3.10


class BatchRunner:
    """Executes one prepared batch on the current loop (see the module docstring)."""

    def __init__(self, config: BatchConfig):
        self.config = config
        self.strategy = config.strategy
        self._records: List[RunRecord] = []
        self._positions: Dict[str, int] = {}
        self._in_flight: Dict["asyncio.Task[Any]", RunUnit] = {}
        self._tasks: Set["asyncio.Task[Any]"] = set()
        self._dispatcher: Optional["asyncio.Task[Any]"] = None
        self._stopping = False
        self._reason: Optional[str] = None
        self._interrupted = False
        self._fatal: Optional[BaseException] = None
        self._tracer: Any = None
        self._batch_span: Any = None

    # -- the batch ----------------------------------------------------------------------------
    async def execute(self) -> BatchResult:
        config = self.config
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        self._tracer = telemetry.get_tracer()
        if self._tracer is not None:
            self._batch_span = telemetry.start_span(
                self._tracer, SPAN_BATCH,
                {"scenario.suite": config.suite or None, "scenario.batch.planned_runs": len(config.units),
                 "scenario.batch.executor": config.executor},
            )
        token = current_strategy.set(self.strategy)
        try:
            with telemetry.use_span(self._batch_span):
                self._dispatcher = loop.create_task(self._dispatch())
            try:
                await asyncio.wait({self._dispatcher})
                while self._tasks:
                    await asyncio.wait(set(self._tasks))
            except asyncio.CancelledError:
                # Our own task was cancelled (Ctrl-C under asyncio.run, a caller's timeout): stop
                # cleanly and hand back what finished rather than losing it.
                self._interrupted = True
                self._stop("interrupted: the batch was cancelled")
                task = asyncio.current_task()
                uncancel = getattr(task, "uncancel", None)
                if uncancel is not None:
                    uncancel()
            pending = set(self._tasks)
            if self._dispatcher is not None and not self._dispatcher.done():
                pending.add(self._dispatcher)
            if pending:
                await asyncio.wait(pending)
            dispatcher = self._dispatcher
            if dispatcher is not None and not dispatcher.cancelled() and dispatcher.exception() is not None:
                # A broken strategy (a custom acquire that raises) must not pass for a short batch.
                self._fatal = self._fatal or dispatcher.exception()
        finally:
            current_strategy.reset(token)
        result = self._result(time.perf_counter() - started)
        if self._batch_span is not None:
            telemetry.end_span(self._batch_span, self._fatal, {
                "scenario.batch.passed": result.passed, "scenario.batch.pass_rate": result.pass_rate,
                "scenario.batch.total": result.total, "scenario.batch.cancelled": result.cancelled,
                **telemetry.usage_attributes(result.usage),
            })
        if self._fatal is not None:
            raise self._fatal
        return result

    def _result(self, duration: float) -> BatchResult:
        config = self.config
        records = sorted(self._records, key=lambda r: self._positions.get(r.id, 0))
        cancelled_runs = sum(1 for r in records if r.status == "cancelled")
        not_started = len(config.units) - len(records)
        metadata: Dict[str, Any] = {
            "executor": config.executor,
            "concurrency": self.strategy.snapshot(),
            "retries": config.max_attempts - 1,
            "timeout": config.timeout,
            "on_error": config.on_error,
            "skipped": config.skipped,
            "variants": list(config.variants),
        }
        if config.shard_count is not None:
            metadata["shard"] = {"index": config.shard_index, "count": config.shard_count}
        return BatchResult.from_records(
            records,
            min_pass_rate=config.min_pass_rate,
            scenario_min_pass_rates={s.name: s.min_pass_rate for s in config.scenarios},
            duration=duration,
            planned=len(config.units),
            cancelled=self._stopping and (cancelled_runs > 0 or not_started > 0 or self._interrupted),
            reason=self._reason,
            metadata=metadata,
        )

    def _stop(self, reason: str) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._reason = reason
        if self._dispatcher is not None and not self._dispatcher.done():
            self._dispatcher.cancel()
        for task in list(self._in_flight):
            task.cancel()

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        strategy = self.strategy
        for unit in self.config.units:
            await strategy.acquire()
            if self._stopping:
                strategy.release()
                return
            task = loop.create_task(self._run_unit(unit))
            self._in_flight[task] = unit
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: "asyncio.Task[Any]") -> None:
        self._tasks.discard(task)
        unit = self._in_flight.pop(task, None)
        if task.cancelled() and unit is not None:
            # Cancelled before its first step: the run's own clean-up never ran, so give its slot
            # back and record it here.
            self.strategy.release()
            record = self._record(unit, None, 0, time.time(), 0.0, None, cancelled=True)
            self._positions[record.id] = unit.position
            self._records.append(record)

    # -- one run ------------------------------------------------------------------------------
    async def _run_unit(self, unit: RunUnit) -> None:
        config = self.config
        task = asyncio.current_task()
        span = None
        if self._tracer is not None:
            span = telemetry.start_span(
                self._tracer, SPAN_BATCH_RUN,
                {"scenario.name": unit.scenario.name, "scenario.variant": unit.variant, "scenario.run_index": unit.index,
                 "scenario.run_id": unit.id},
                parent=self._batch_span,
            )
        started_at = time.time()
        t0 = time.perf_counter()
        attempts = 0
        usage: Optional[Usage] = None
        outcome: Optional[_Outcome] = None
        released = False
        history: List[AttemptInfo] = []
        live.running(unit.id, config.suite, unit.scenario.name, unit.variant, unit.index)  # this task's context
        try:
            with telemetry.use_span(span):
                while True:
                    attempts += 1
                    attempt_started = time.perf_counter()
                    outcome = await self._attempt(unit)
                    history.append(AttemptInfo(
                        status=outcome.status, duration=time.perf_counter() - attempt_started,
                        error=_error_text(outcome.exception) if outcome.exception is not None else None,
                    ))
                    if outcome.result is not None:
                        if usage is None:
                            usage = outcome.result.usage
                        else:
                            usage = usage.model_copy(deep=True)
                            usage.merge(outcome.result.usage)
                    if self._should_retry(outcome, attempts):
                        from ..retry import classify_error, retry_after_seconds, retry_board

                        assert outcome.exception is not None
                        wait = config.retry_policy.compute_sleep(attempts, retry_after_seconds(outcome.exception))
                        if span is not None:
                            span.add_event("retry", {"attempt": attempts, "status": outcome.status,
                                                     "error": _error_text(outcome.exception)[:500]})
                        history[-1].waited = wait
                        # Listed while it waits, so the live display can say what is retrying.
                        await retry_board.sleep(wait, classify_error(outcome.exception))
                        continue
                    break
        except asyncio.CancelledError:
            self.strategy.release()
            released = True
            self._in_flight.pop(task, None)  # type: ignore[arg-type]
            record = self._record(unit, None, attempts, started_at, time.perf_counter() - t0, usage, cancelled=True)
            telemetry.end_span(span, None, {"scenario.status": "cancelled", "scenario.attempts": attempts})
            # Stopped from outside: kept in the result, but not a finished run to persist.
            self._positions[record.id] = unit.position
            self._records.append(record)
            return
        finally:
            if not released:
                self.strategy.release()
        self._in_flight.pop(task, None)  # type: ignore[arg-type]
        assert outcome is not None
        record = self._record(unit, outcome, attempts, started_at, time.perf_counter() - t0, usage)
        if len(history) > 1:  # one attempt says nothing the record does not
            record.attempt_history = history
        self._feedback(outcome)
        telemetry.end_span(
            span, outcome.exception if record.status in ("error", "timeout") else None,
            {"scenario.status": record.status, "scenario.attempts": attempts},
        )
        await self._deliver(unit, record)

    def _should_retry(self, outcome: _Outcome, attempts: int) -> bool:
        if attempts >= self.config.max_attempts or self._stopping:
            return False
        if outcome.status not in ("error", "timeout") or outcome.exception is None:
            return False
        from ..retry import is_retryable

        return is_retryable(outcome.exception)

    def _feedback(self, outcome: _Outcome) -> None:
        """An agent under test that hit its provider's rate limit is a signal for Adaptive too (the
        library's own model calls already report theirs)."""
        exc = outcome.exception
        if exc is None or isinstance(exc, ModelCallError):
            return
        from ..retry import classify_error, retry_after_seconds

        if classify_error(exc) == "rate_limit":
            self.strategy.on_rate_limited(retry_after_seconds(exc))

    async def _attempt(self, unit: RunUnit) -> _Outcome:
        config = self.config
        try:
            agents = unit.recipe.build()
        except Exception as exc:
            return _Outcome(None, exc, "error", f"agent factory of variant {unit.variant!r}")
        try:
            spec = build_spec(**unit.scenario.run_kwargs(agents, timeout=config.timeout))
        except Exception as exc:
            return _Outcome(None, exc, "error", "set-up")
        if config.executor == "thread":
            # Like scenario.run, except that a worker thread may start on the loop its previous run
            # left pristine: making and closing a loop per run was a third of the executor's CPU.
            awaitable: Any = run_engine(spec, reuse_loop=True)
        else:
            awaitable = ScenarioEngine(spec, owns_loop=False).execute()
        try:
            if spec.timeout is None:
                result = await awaitable
            else:
                result = await _with_backstop(awaitable, spec.timeout + BACKSTOP_GRACE)
        except (TimeoutError, asyncio.TimeoutError) as exc:
            error = TimeoutError(
                f"the run did not stop within {BACKSTOP_GRACE:.0f}s of its {spec.timeout}s timeout and was cancelled "
                "(an agent blocking its thread, or ignoring cancellation)"
            )
            error.__cause__ = exc
            return _Outcome(None, error, "timeout", "batch timeout backstop")
        except Exception as exc:
            return _Outcome(None, exc, "error", "engine")
        if result.success:
            return _Outcome(result, None, "passed")
        exc = result.exception
        if result.error is not None:
            return _Outcome(result, exc, "timeout" if _is_timeout(exc) else "error", result.error.where)
        return _Outcome(result, None, "failed")

    def _record(
        self,
        unit: RunUnit,
        outcome: Optional[_Outcome],
        attempts: int,
        started_at: float,
        duration: float,
        usage: Optional[Usage],
        cancelled: bool = False,
    ) -> RunRecord:
        scenario = unit.scenario
        record = RunRecord(
            id=unit.id,
            suite=self.config.suite,
            scenario=scenario.name,
            variant=unit.variant,
            index=unit.index,
            status="cancelled" if cancelled or outcome is None else outcome.status,  # type: ignore[arg-type]
            result=outcome.result if outcome is not None else None,
            attempts=max(1, attempts),
            started_at=started_at,
            duration=duration,
            usage=usage if usage is not None else Usage(),
            set_id=scenario.set_id,
            metadata=scenario.metadata,
            fingerprint=unit.recipe.fingerprint,
        )
        if cancelled:
            record.error_type = "CancelledError"
            record.error_message = self._reason or "cancelled"
            return record
        assert outcome is not None
        exc = outcome.exception
        if outcome.status in ("error", "timeout"):
            info = outcome.result.error if outcome.result is not None else None
            record.error_type = info.type if info is not None else type(exc).__name__
            record.error_message = info.message if info is not None else str(exc)
            record.error_where = info.where if info is not None else outcome.where
            if info is not None and info.traceback:
                record.error_traceback = info.traceback
            elif exc is not None:
                from ..tracebacks import format_exception

                record.error_traceback = format_exception(exc)
            record._exception = exc
        return record

    async def _deliver(self, unit: RunUnit, record: RunRecord) -> None:
        hook = self.config.on_run_finished
        if hook is not None and self._fatal is None:
            try:
                value = hook(record)
                if inspect.isawaitable(value):
                    await value
            except Exception as exc:
                if hasattr(exc, "add_note"):
                    exc.add_note(f"raised by run_batch(on_run_finished=...) for {record!r}; the batch was stopped")
                self._fatal = exc
                self._stop(f"on_run_finished raised {type(exc).__name__}")
                return
        self._positions[record.id] = unit.position
        self._records.append(record)
        if self.config.on_error == "fail_fast" and record.status in ("error", "timeout"):
            self._stop(
                f"fail_fast: {record.scenario!r} [{record.variant}] run {record.index} ended with "
                f"{record.status} ({record.error_type})"
            )


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
