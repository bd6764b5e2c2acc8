"""The one dispatch loop: every batch, whatever executes its runs, is driven from here.

Shape: a feeder task walks the planned runs in order, takes a slot from the concurrency strategy
for each and submits it to the backend; the driver (this loop's main coroutine) consumes the
backend's events. Nothing waits for a slot as a task, so a million-run plan costs one submitted
run per slot *in flight*, not per run planned.

What the driver guarantees, the same for every backend:

* **Exactly once.** A record is accepted for a run id once; a later one (a worker thought lost
  that reported after all, a re-sent run finishing twice) is dropped and counted. Each accepted
  finished record is handed to ``on_run_finished`` (the store) the moment it arrives, before it
  is counted: an interrupted batch loses nothing it finished.
* **Lost workers.** Runs on a worker that died are re-sent by the driver, up to
  ``infra_retries`` times each, then recorded as ``WorkerLost`` errors. (An engine's own task
  retry is not used: replaying a stream by position duplicates and loses items.) A cancelled
  record that arrives while nobody asked for cancellation means the worker was stopped from
  outside: that is a lost worker too.
* **Stopping.** Fail-fast, an ``on_run_finished`` error, or the batch's own task being cancelled
  (Ctrl-C under ``asyncio.run``) stops the feeder and asks the backend to cancel the runs in
  flight; their cancelled records are collected for up to ``STOP_GRACE`` seconds, and any run
  whose worker never answered is recorded as cancelled by the driver. The partial result is
  returned, never an exception.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import TYPE_CHECKING, Any

from scenario.batch.backends import resolve_backend
from scenario.batch.backends.base import Backend, Feedback, Finished, Lost, WorkerFailed
from scenario.batch.execute import make_record
from scenario.concurrency.strategies import current_strategy
from scenario.records import BatchResult, RunRecord
from scenario.runtime.heap import frozen_heap
from scenario.settings import settings
from scenario.telemetry import tracer as telemetry
from scenario.telemetry.spans import SPAN_BATCH

if TYPE_CHECKING:  # pragma: no cover
    from scenario.batch.runner import BatchConfig
    from scenario.batch.spec import RunUnit

#: Seconds the driver waits, once stopping, for workers to report their cancelled runs.
STOP_GRACE = 10.0

#: Error type of a run whose worker was lost more often than ``infra_retries`` allows.
WORKER_LOST = "WorkerLost"


class _FeederDone:
    """Posted by the feeder when it has submitted everything it will."""


class Dispatcher:
    """Drives one prepared batch on a backend, on the current loop (see the module docstring)."""

    def __init__(self, config: BatchConfig, backend: Backend):
        self.config = config
        self.backend = backend
        self.strategy = config.strategy
        self._units: dict[str, RunUnit] = {u.id: u for u in config.units}
        self._records: dict[str, RunRecord] = {}
        self._in_flight: set[str] = set()
        self._sent: dict[str, int] = {}  # run id -> times submitted
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._feeder: asyncio.Task[Any] | None = None
        self._feeder_done = False
        self._stopping = False
        self._reason: str | None = None
        self._interrupted = False
        self._fatal: BaseException | None = None
        self._resent = 0
        self._duplicates = 0
        self._workers_lost: set[str] = set()

    # -- the batch ----------------------------------------------------------------------------
    async def execute(self) -> BatchResult:
        config = self.config
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        tracer = telemetry.get_tracer()
        batch_span = None
        if tracer is not None:
            batch_span = telemetry.start_span(
                tracer, SPAN_BATCH,
                {"scenario.suite": config.suite or None, "scenario.batch.planned_runs": len(config.units),
                 "scenario.batch.executor": config.executor, "scenario.batch.backend": self.backend.name},
            )
        token = current_strategy.set(self.strategy)
        self.backend.bind(loop, self._queue.put_nowait)
        try:
            try:
                with telemetry.use_span(batch_span):
                    await self.backend.start(config, batch_span)
                    self._feeder = loop.create_task(self._feed())
                await self._drive()
            except asyncio.CancelledError:
                # Our own task was cancelled (Ctrl-C under asyncio.run, a caller's timeout): stop
                # cleanly and hand back what finished rather than losing it.
                self._interrupted = True
                task = asyncio.current_task()
                uncancel = getattr(task, "uncancel", None)
                if uncancel is not None:
                    uncancel()
                self._stop("interrupted: the batch was cancelled")
                await self._drain()
        finally:
            try:
                if self._feeder is not None and not self._feeder.done():
                    self._feeder.cancel()
                    await asyncio.wait({self._feeder})
                await self.backend.close()
            finally:
                current_strategy.reset(token)
        feeder = self._feeder
        if feeder is not None and not feeder.cancelled() and feeder.exception() is not None:
            # A broken strategy (a custom acquire that raises) must not pass for a short batch.
            self._fatal = self._fatal or feeder.exception()
        result = self._result(time.perf_counter() - started)
        if batch_span is not None:
            telemetry.end_span(batch_span, self._fatal, {
                "scenario.batch.passed": result.passed, "scenario.batch.pass_rate": result.pass_rate,
                "scenario.batch.total": result.total, "scenario.batch.cancelled": result.cancelled,
                **telemetry.usage_attributes(result.usage),
            })
        if self._fatal is not None:
            raise self._fatal
        return result

    async def _feed(self) -> None:
        strategy = self.strategy
        try:
            for unit in self.config.units:
                await strategy.acquire()
                if self._stopping:
                    strategy.release()
                    return
                self._in_flight.add(unit.id)
                self._sent[unit.id] = 1
                self.backend.submit(unit)
        finally:
            self._queue.put_nowait(_FeederDone())

    async def _drive(self) -> None:
        while not (self._feeder_done and not self._in_flight):
            event = await self._queue.get()
            await self._handle(event)

    async def _drain(self) -> None:
        """Collect the cancelled runs' records for a while; then record the silent ones ourselves."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_GRACE
        if self._feeder is None:  # stopped while the backend was starting: nothing was sent
            self._feeder_done = True
        while self._in_flight or not self._feeder_done:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                event = await asyncio.wait_for(self._queue.get(), remaining)
            except asyncio.TimeoutError:
                break
            await self._handle(event)
        for run_id in sorted(self._in_flight, key=lambda i: self._units[i].position):
            self._accept_cancelled(make_record(self._units[run_id], self.config.suite, None, 0, time.time(), 0.0,
                                               None, cancelled=self._reason or "cancelled"))
        self._in_flight.clear()

    # -- events -------------------------------------------------------------------------------
    async def _handle(self, event: Any) -> None:
        if isinstance(event, _FeederDone):
            self._feeder_done = True
        elif isinstance(event, Finished):
            await self._on_record(event.record, event.worker)
        elif isinstance(event, Lost):
            await self._on_lost(event)
        elif isinstance(event, Feedback):
            self._on_feedback(event)
        elif isinstance(event, WorkerFailed):
            if self._fatal is None:
                self._fatal = event.error
            self._stop(f"a worker failed: {type(event.error).__name__}: {event.error}")

    async def _on_record(self, record: RunRecord, worker: str | None = None) -> None:
        if record.id in self._records or record.id not in self._in_flight:
            # Already recorded, or never sent: a replay of a run some worker was thought to have lost.
            self._duplicates += 1
            return
        if record.status == "cancelled" and not self._stopping:
            # Nobody asked for this: the worker was stopped from outside (a signal sent to it
            # alone, its node draining). Its run did not finish, so it goes out again.
            await self._on_lost(Lost([record.id], worker or "?", f"run cancelled on its worker: {record.error_message}"))
            return
        self._in_flight.discard(record.id)
        self.strategy.release()
        if record.status == "cancelled":
            self._accept_cancelled(record)
            return
        await self._deliver(record)

    def _accept_cancelled(self, record: RunRecord) -> None:
        # Stopped from outside: kept in the result, but not a finished run to persist.
        self._records[record.id] = record

    async def _deliver(self, record: RunRecord) -> None:
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
                # Not stored, so not counted either: the result says what the caller holds.
                return
        self._records[record.id] = record
        if self.config.on_error == "fail_fast" and record.status in ("error", "timeout"):
            self._stop(
                f"fail_fast: {record.scenario!r} [{record.variant}] run {record.index} ended with "
                f"{record.status} ({record.error_type})"
            )

    async def _on_lost(self, event: Lost) -> None:
        if event.worker != "?":
            self._workers_lost.add(event.worker)
        for run_id in event.run_ids:
            if run_id in self._records or run_id not in self._in_flight:
                continue
            unit = self._units[run_id]
            if self._stopping:
                self._in_flight.discard(run_id)
                self.strategy.release()
                self._accept_cancelled(make_record(unit, self.config.suite, None, 0, time.time(), 0.0, None,
                                                   cancelled=self._reason or "cancelled"))
                continue
            sent = self._sent.get(run_id, 1)
            if sent <= self.config.infra_retries:
                self._sent[run_id] = sent + 1
                self._resent += 1
                self.backend.submit(unit)
                continue
            self._in_flight.discard(run_id)
            self.strategy.release()
            record = RunRecord(
                id=unit.id, suite=self.config.suite, scenario=unit.scenario.name, variant=unit.variant,
                index=unit.index, status="error", attempts=sent, started_at=time.time(),
                set_id=unit.scenario.set_id, metadata=unit.scenario.metadata, error_type=WORKER_LOST,
                fingerprint=unit.recipe.fingerprint,
                error_where=f"worker {event.worker}",
                error_message=(
                    f"the run was lost with its worker {sent} time(s) (last: {event.reason}); all "
                    f"infra_retries={self.config.infra_retries} re-sends were used. Raise infra_retries, or check "
                    "the workers' memory and logs."
                ),
            )
            await self._deliver(record)

    def _on_feedback(self, event: Feedback) -> None:
        strategy = self.strategy
        if event.kind == "rate_limited":
            strategy.on_rate_limited(event.retry_after)
        elif event.kind == "success":
            strategy.on_success()
        elif event.kind == "error":
            strategy.on_error(RuntimeError(event.message or "error on a worker"))

    def _stop(self, reason: str) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._reason = reason
        if self._feeder is not None and not self._feeder.done():
            self._feeder.cancel()
        if self._in_flight:
            self.backend.cancel(sorted(self._in_flight, key=lambda i: self._units[i].position), reason)

    # -- the result ---------------------------------------------------------------------------
    def _result(self, duration: float) -> BatchResult:
        config = self.config
        records = sorted(self._records.values(), key=lambda r: self._units[r.id].position)
        cancelled_runs = sum(1 for r in records if r.status == "cancelled")
        not_started = len(config.units) - len(records)
        metadata: dict[str, Any] = {
            "executor": config.executor,
            "backend": self.backend.name,
            "concurrency": self.strategy.snapshot(),
            "retries": config.max_attempts - 1,
            "timeout": config.timeout,
            "on_error": config.on_error,
            "skipped": config.skipped,
            "variants": list(config.variants),
            "infra_retries": config.infra_retries,
            "runs_resent": self._resent,
            "duplicates_dropped": self._duplicates,
            "workers_lost": len(self._workers_lost),
            **self.backend.metadata(),
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


async def execute_batch(config: BatchConfig) -> BatchResult:
    """Run a planned batch through the one dispatch loop, on the backend it asks for."""
    processes_used = config.processes if len(config.units) > 1 else 1
    with frozen_heap(settings().batch_gc_freeze):
        return await Dispatcher(config, resolve_backend(config.backend, processes_used)).execute()
