"""The worker side of a remote backend: runs what the driver sends, reports what happened.

A forked ``processes=N`` worker and a Ray actor both keep one :class:`WorkerSession` on their
own event loop. It starts each unit it is given as a task (``execute.py`` runs it), cancels runs
when told, and reports through one ``send`` callable: finished records (as JSON, since the
original exception object cannot travel; its type, message and where do), and the concurrency
feedback its model calls produce, relayed to the driver's strategy so Adaptive sees 429s from
every worker. The session never decides what runs next, never retries a lost run and never
writes a store: the driver does, once for every backend.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from scenario.batch.execute import UnitTasks
from scenario.concurrency.strategies import ConcurrencyStrategy, current_strategy
from scenario.records import RunRecord
from scenario.telemetry import tracer as telemetry

if TYPE_CHECKING:  # pragma: no cover
    from scenario.batch.runner import BatchConfig
    from scenario.batch.spec import RunUnit

Send = Callable[[Any], None]


class FeedbackRelay(ConcurrencyStrategy):
    """The current strategy on a worker: never limits (the driver already did), forwards every
    signal to the driver's strategy."""

    def __init__(self, send: Send) -> None:
        super().__init__(1 << 30)
        self._send = send

    def on_success(self) -> None:
        self._send(("feedback", "success", None, ""))

    def on_rate_limited(self, retry_after: float | None = None) -> None:
        self._send(("feedback", "rate_limited", retry_after, ""))

    def on_error(self, exc: BaseException) -> None:
        self._send(("feedback", "error", None, f"{type(exc).__name__}: {exc}"[:300]))


def dump_record(record: RunRecord) -> str:
    try:
        return record.model_dump_json(fallback=str)
    except Exception:  # pragma: no cover - exotic message content
        return json.dumps(record.model_dump(mode="python"), default=str)


def load_record(payload: str) -> RunRecord:
    return RunRecord.model_validate_json(payload)


def parent_from_traceparent(carrier: Mapping[str, str] | None) -> Any:
    """A span to nest a worker's run spans under, rebuilt from the driver's W3C traceparent."""
    if not carrier:
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        context = TraceContextTextMapPropagator().extract(dict(carrier))
        span = trace.get_current_span(context)
        return span if span.get_span_context().is_valid else None
    except Exception:  # pragma: no cover - no OpenTelemetry: nothing to nest under
        return None


def traceparent_of(span: Any) -> dict[str, str]:
    """The W3C traceparent carrier for ``span`` (empty without a span)."""
    if span is None:
        return {}
    try:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier, context=trace.set_span_in_context(span))
        return carrier
    except Exception:  # pragma: no cover
        return {}


class WorkerSession:
    """Runs units on the current loop for a remote driver (see the module docstring)."""

    def __init__(self, config: BatchConfig, send: Send, parent: Any = None) -> None:
        self.config = config
        self._send = send
        self._parent = parent
        self._runs = UnitTasks(config, internal_error="internal error on the worker")
        self.relay = FeedbackRelay(send)

    @property
    def running(self) -> int:
        return self._runs.running

    def _create(self, unit: RunUnit, parent: Any) -> asyncio.Task[Any]:
        # The run's model calls report their concurrency feedback to the relay (the task copies
        # the current context when it is created).
        token = current_strategy.set(self.relay)
        try:
            return self._runs.start(unit, parent)
        finally:
            current_strategy.reset(token)

    def start(self, unit: RunUnit) -> asyncio.Task[Any]:
        """Start ``unit``; its record is sent when it ends (also when cancelled)."""
        task = self._create(unit, self._parent)

        def done(task: asyncio.Task[Any]) -> None:
            record = self._finish(unit, task)
            self._send(("record", dump_record(record)))

        task.add_done_callback(done)
        return task

    async def run(self, unit: RunUnit, parent: Any = None) -> RunRecord:
        """Run ``unit`` and return its record (for transports where the reply is the result)."""
        task = self._create(unit, parent if parent is not None else self._parent)
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:  # the call itself was cancelled: stop the run with it
            task.cancel()
            await asyncio.wait({task})
        return self._finish(unit, task)

    def _finish(self, unit: RunUnit, task: asyncio.Task[Any]) -> RunRecord:
        # A task that raised is a bug in the library: its type and message travel in the record
        # (the exception object cannot travel).
        record, _ = self._runs.finish(unit, task)
        self.flush_spans()
        return record

    @staticmethod
    def flush_spans() -> None:
        """Export this worker's finished spans before its record leaves: the driver may end (and
        the process with it) as soon as the last record arrives."""
        if telemetry.get_tracer() is not None:
            telemetry.force_flush(timeout_millis=5000)

    def cancel(self, run_ids: Collection[str], reason: str) -> None:
        self._runs.cancel(run_ids, reason)

    def cancel_all(self, reason: str) -> None:
        self._runs.cancel_all(reason)

    async def wait_idle(self, timeout: float) -> None:
        await self._runs.wait_idle(timeout)
