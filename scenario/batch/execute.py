"""One planned run, executed to a record: the only thing a batch backend's worker does.

Every backend (in-process, forked processes, Ray actors) runs a unit with :func:`execute_unit`,
so a run means the same thing everywhere: fresh agents from the recipe, the engine on a worker
thread's own loop (``executor="thread"``) or on this loop (``"loop"``), a whole-run retry on a
transient error with the batch's backoff, and a :class:`RunRecord` at the end. Nothing here
knows about slots, fail-fast, delivery or stores: the dispatch loop (``dispatch.py``) owns those,
so a worker can run anywhere and only hands back records.

A run cancelled from outside (the dispatch loop stopping, a worker told to stop) comes back as a
``cancelled`` record carrying the attempts and usage spent so far, instead of raising: the caller
learns what was spent, and cancellation is the dispatch loop's decision, not an error.

:class:`UnitTasks` is the one home of the runs an executor has in flight (the in-process backend,
and the session on a forked worker or Ray actor): each a task on the current loop, cancelled with
a reason, turned into its record when it ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from scenario import live
from scenario.batch.spec import RunUnit
from scenario.concurrency.strategies import current_strategy
from scenario.engine.loop import ScenarioEngine
from scenario.errors import ModelCallError
from scenario.executors import run_engine
from scenario.llm.retry import classify_error, is_retryable, retry_after_seconds, retry_board
from scenario.records import AttemptInfo, RunRecord, RunStatus
from scenario.result import ScenarioResult
from scenario.telemetry import tracer as telemetry
from scenario.telemetry.spans import ATTR_ATTEMPTS, ATTR_NAME, ATTR_STATUS, SPAN_BATCH_RUN
from scenario.tracebacks import format_exception
from scenario.usage import Usage

if TYPE_CHECKING:  # pragma: no cover
    from scenario.batch.runner import BatchConfig

#: Seconds past a run's timeout before the batch stops waiting for the engine to enforce it
#: (a synchronous adapter blocking its worker loop cannot be interrupted from inside).
BACKSTOP_GRACE = 5.0


@dataclasses.dataclass
class _Outcome:
    result: ScenarioResult | None
    exception: BaseException | None
    status: RunStatus
    where: str | None = None


def _is_timeout(exc: BaseException | None) -> bool:
    return isinstance(exc, (TimeoutError, asyncio.TimeoutError))


async def _with_backstop(awaitable: Any, seconds: float) -> Any:
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)  # pragma: no cover - Python 3.10


async def execute_unit(unit: RunUnit, config: BatchConfig, parent: Any = None,
                       cancel_reason: Any | None = None) -> RunRecord:
    """Run ``unit`` (retrying a transient error as the batch asks) and return its record.

    ``parent`` is the span the run's span nests under: the batch span in-process, a span context
    rebuilt from the driver's W3C traceparent on a remote worker. ``cancel_reason`` is a
    zero-argument callable giving the text a cancelled record carries.
    """
    tracer = telemetry.get_tracer()
    span = None
    if tracer is not None:
        span = telemetry.start_span(
            tracer, SPAN_BATCH_RUN,
            {ATTR_NAME: unit.scenario.name, "scenario.variant": unit.variant, "scenario.run_index": unit.index,
             "scenario.run_id": unit.id},
            parent=parent,
        )
    started_at = time.time()
    t0 = time.perf_counter()
    attempts = 0
    usage: Usage | None = None
    outcome: _Outcome | None = None
    history: list[AttemptInfo] = []
    live.running(unit.id, config.suite, unit.scenario.name, unit.variant, unit.index)  # this task's context
    try:
        with telemetry.use_span(span):
            while True:
                attempts += 1
                attempt_started = time.perf_counter()
                outcome = await _attempt(unit, config)
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
                if _should_retry(config, outcome, attempts):
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
        reason = cancel_reason() if cancel_reason is not None else None
        record = make_record(unit, config.suite, None, attempts, started_at, time.perf_counter() - t0, usage,
                             cancelled=reason or "cancelled")
        telemetry.end_span(span, None, {ATTR_STATUS: "cancelled", ATTR_ATTEMPTS: attempts})
        return record
    assert outcome is not None
    record = make_record(unit, config.suite, outcome, attempts, started_at, time.perf_counter() - t0, usage)
    if len(history) > 1:  # one attempt says nothing the record does not
        record.attempt_history = history
    _feedback(outcome)
    telemetry.end_span(
        span, outcome.exception if record.status in ("error", "timeout") else None,
        {ATTR_STATUS: record.status, ATTR_ATTEMPTS: attempts},
    )
    return record


def _should_retry(config: BatchConfig, outcome: _Outcome, attempts: int) -> bool:
    if attempts >= config.max_attempts:
        return False
    if outcome.status not in ("error", "timeout") or outcome.exception is None:
        return False
    return is_retryable(outcome.exception)


def _feedback(outcome: _Outcome) -> None:
    """An agent under test that hit its provider's rate limit is a signal for Adaptive too (the
    library's own model calls already report theirs). Goes to whatever strategy is current: the
    batch's own in-process, a relay to the driver's on a remote worker."""
    exc = outcome.exception
    if exc is None or isinstance(exc, ModelCallError):
        return
    if classify_error(exc) == "rate_limit":
        strategy = current_strategy.get()
        if strategy is not None:
            strategy.on_rate_limited(retry_after_seconds(exc))


async def _attempt(unit: RunUnit, config: BatchConfig) -> _Outcome:
    try:
        agents = unit.recipe.build()
    except Exception as exc:
        return _Outcome(None, exc, "error", f"agent factory of variant {unit.variant!r}")
    try:
        spec = unit.scenario.spec(agents, timeout=config.timeout)
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
    raised = result.exception
    if result.error is not None:
        return _Outcome(result, raised, "timeout" if _is_timeout(raised) else "error", result.error.where)
    return _Outcome(result, None, "failed")


def make_record(
    unit: RunUnit,
    suite: str,
    outcome: _Outcome | None,
    attempts: int,
    started_at: float,
    duration: float,
    usage: Usage | None,
    cancelled: str | None = None,
) -> RunRecord:
    """The record of one run; ``cancelled`` (the reason) makes it a cancelled record."""
    scenario = unit.scenario
    record = RunRecord(
        id=unit.id,
        suite=suite,
        scenario=scenario.name,
        variant=unit.variant,
        index=unit.index,
        status="cancelled" if cancelled is not None or outcome is None else outcome.status,
        result=outcome.result if outcome is not None else None,
        attempts=max(1, attempts),
        started_at=started_at,
        duration=duration,
        usage=usage if usage is not None else Usage(),
        set_id=scenario.set_id,
        metadata=scenario.metadata,
        fingerprint=unit.recipe.fingerprint,
    )
    if cancelled is not None or outcome is None:
        record.error_type = "CancelledError"
        record.error_message = cancelled or "cancelled"
        return record
    exc = outcome.exception
    if outcome.status in ("error", "timeout"):
        info = outcome.result.error if outcome.result is not None else None
        record.error_type = info.type if info is not None else type(exc).__name__
        record.error_message = info.message if info is not None else str(exc)
        record.error_where = info.where if info is not None else outcome.where
        if info is not None and info.traceback:
            record.error_traceback = info.traceback
        elif exc is not None:
            record.error_traceback = format_exception(exc)
        record._exception = exc
    return record


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class UnitTasks:
    """The runs one executor has in flight, each a task running :func:`execute_unit` on the
    current loop (see the module docstring).

    ``internal_error`` prefixes the reason of a record made for a task that raised instead of
    returning a record (a bug in the library: :func:`execute_unit` turns every failure of a run
    into a record).
    """

    def __init__(self, config: BatchConfig, *, internal_error: str = "internal error") -> None:
        self.config = config
        self._internal_error = internal_error
        self._tasks: dict[str, asyncio.Task[RunRecord]] = {}
        self._reasons: dict[str, str] = {}

    @property
    def running(self) -> int:
        return len(self._tasks)

    def start(self, unit: RunUnit, parent: Any = None) -> asyncio.Task[RunRecord]:
        """Start ``unit`` as a task on the running loop (its span nests under ``parent``)."""
        task = asyncio.get_running_loop().create_task(
            execute_unit(unit, self.config, parent, cancel_reason=lambda: self._reasons.get(unit.id))
        )
        self._tasks[unit.id] = task
        return task

    def finish(self, unit: RunUnit, task: asyncio.Task[RunRecord]) -> tuple[RunRecord, BaseException | None]:
        """The record of ``unit``'s ended task, and the exception if the task raised (a bug that
        must surface, not vanish with the task)."""
        self._tasks.pop(unit.id, None)
        reason = self._reasons.pop(unit.id, None)
        if task.cancelled():
            # Cancelled before its first step: the run never started, so its record is made here.
            return make_record(unit, self.config.suite, None, 0, time.time(), 0.0, None,
                               cancelled=reason or "cancelled"), None
        exc = task.exception()
        if exc is not None:
            return make_record(unit, self.config.suite, None, 0, time.time(), 0.0, None,
                               cancelled=f"{self._internal_error}: {type(exc).__name__}: {exc}"), exc
        return task.result(), None

    def cancel(self, run_ids: Collection[str], reason: str) -> None:
        """Cancel these runs (if still going); each ends with a cancelled record giving ``reason``."""
        for run_id in run_ids:
            task = self._tasks.get(run_id)
            if task is not None and not task.done():
                self._reasons[run_id] = reason
                task.cancel()

    def cancel_all(self, reason: str) -> None:
        self.cancel(list(self._tasks), reason)

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Wait (up to ``timeout`` seconds) until every run in flight has ended."""
        pending = [t for t in self._tasks.values() if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
