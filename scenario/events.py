"""Typed events: code low in the flow says what happened, observers higher up subscribe.

Why: the engine must not know pytest exists and the model call must not know which concurrency
strategy runs it. So the engine announces :class:`RunFinished` and the model-call layers
(:mod:`scenario.llm.layers`) announce :class:`ModelCallFinished`, :class:`RateLimited` and
:class:`RetryScheduled`; the pytest plugin, the concurrency strategies and anything else that
cares subscribe, and the import arrow points from the observer to this module, never upward.

Two scopes of subscription:

- :func:`subscribe` (process-wide, returns the function that unsubscribes): for observers that are
  process-wide themselves. The concurrency strategies subscribe this way once and forward to the
  strategy current in the caller's context (``scenario.concurrency.strategies.current_strategy``).
- :func:`subscribed` (a context manager): only events published in the enclosed context, and in
  contexts copied from it (``run``'s worker thread, asyncio tasks), reach the handler. Concurrent
  tests and concurrent runs each hear only their own.

Handlers are matched by the event's exact class, run synchronously in the publisher's thread and
must be quick. A handler that raises is logged and skipped: an observer never changes the outcome
of what it observes (a finished run stays finished, a model call keeps its answer).

:class:`ResultCollector` with :func:`collecting` / :data:`current_collector` /
:func:`report_result` is the pytest plugin's view of :class:`RunFinished`: each result reported
inside a test (or one repetition of it) is attributed to that test without the test passing
anything around. This module is imported on every run, so it stays small and depends only on data.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from scenario.usage import Usage

if TYPE_CHECKING:  # pragma: no cover
    from scenario.result import ScenarioResult

__all__ = [
    "ModelCallFinished",
    "RateLimited",
    "ResultCollector",
    "RetryScheduled",
    "RunFinished",
    "collecting",
    "current_collector",
    "publish",
    "report_result",
    "subscribe",
    "subscribed",
]

logger = logging.getLogger(__name__)

E = TypeVar("E")


# ---------------------------------------------------------------------------
# The events
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunFinished:
    """A scenario run is final (the engine publishes it once per run)."""

    result: ScenarioResult


@dataclass(frozen=True, slots=True)
class ModelCallFinished:
    """One logical model call (all its attempts) is over: answered, replayed or failed.

    ``error`` is the last attempt's exception for a call that failed; ``cached`` is True for a
    replay from the cache (no provider was asked, so no concurrency feedback is due).
    """

    role: str
    model: str
    attempts: int = 1
    latency: float = 0.0
    cached: bool = False
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class RateLimited:
    """A provider answered one attempt with a rate limit (429/overloaded).

    ``retry_after`` is the wait the server asked for, in seconds, when it said so.
    """

    retry_after: float | None = None
    role: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    """A failed attempt will be retried after ``sleep`` seconds."""

    attempt: int  # the attempt that failed (1-based)
    kind: str  # scenario.llm.classify.ErrorKind
    sleep: float
    retry_after: float | None = None
    error: BaseException | None = None
    role: str | None = None
    model: str | None = None


# ---------------------------------------------------------------------------
# Subscribing and publishing
# ---------------------------------------------------------------------------

Handler = Callable[[Any], None]

_lock = threading.Lock()
_process_wide: dict[type, tuple[Handler, ...]] = {}
_scoped: contextvars.ContextVar[tuple[tuple[type, Handler], ...]] = contextvars.ContextVar(
    "scenario_event_subscribers", default=()
)


def subscribe(event_type: type[E], handler: Callable[[E], None]) -> Callable[[], None]:
    """Call ``handler(event)`` for every ``event_type`` published anywhere in this process.

    Returns a function that unsubscribes (idempotent).
    """
    with _lock:
        _process_wide[event_type] = (*_process_wide.get(event_type, ()), handler)

    def unsubscribe() -> None:
        with _lock:
            handlers = list(_process_wide.get(event_type, ()))
            if handler in handlers:
                handlers.remove(handler)
                _process_wide[event_type] = tuple(handlers)

    return unsubscribe


@contextlib.contextmanager
def subscribed(event_type: type[E], handler: Callable[[E], None]) -> Iterator[None]:
    """Call ``handler(event)`` for every ``event_type`` published in the enclosed context."""
    token = _scoped.set((*_scoped.get(), (event_type, handler)))
    try:
        yield
    finally:
        _scoped.reset(token)


def publish(event: object) -> None:
    """Hand ``event`` to its subscribers (process-wide first, then scoped). Never raises."""
    kind = type(event)
    handlers = _process_wide.get(kind, ())
    scoped = _scoped.get()
    for handler in handlers:
        _deliver(handler, event)
    for wanted, handler in scoped:
        if wanted is kind:
            _deliver(handler, event)


def _deliver(handler: Handler, event: object) -> None:
    try:
        handler(event)
    except Exception:  # an observer must not change the outcome of what it observes
        logger.exception("scenario: a subscriber to %s failed", type(event).__name__)


# ---------------------------------------------------------------------------
# Results per test (the pytest plugin's subscriber to RunFinished)
# ---------------------------------------------------------------------------


class ResultCollector:
    """Accumulates the scenario results reported while it is current.

    Results can arrive from worker threads (``run`` executes on the shared pool), so appends
    take a lock. A collector may forward to a ``parent`` so an outer observer (a whole test)
    also sees what an inner one (one repetition of it) collected.
    """

    def __init__(self, parent: ResultCollector | None = None) -> None:
        self.parent = parent
        self._lock = threading.Lock()
        self._results: list[ScenarioResult] = []

    def add(self, result: ScenarioResult) -> None:
        """Record one finished result (and pass it to the parent, if any)."""
        with self._lock:
            self._results.append(result)
        if self.parent is not None:
            self.parent.add(result)

    @property
    def results(self) -> list[ScenarioResult]:
        """A snapshot of the results collected so far, in completion order."""
        with self._lock:
            return list(self._results)

    def usage(self) -> Usage:
        """The collected results' usage, summed (tokens, calls, cost)."""
        total = Usage()
        for result in self.results:
            total.merge(result.usage)
        return total


current_collector: contextvars.ContextVar[ResultCollector | None] = contextvars.ContextVar(
    "scenario_current_collector", default=None
)


@contextlib.contextmanager
def collecting(collector: ResultCollector) -> Iterator[ResultCollector]:
    """Make ``collector`` current for the enclosed code (restored on exit)."""
    token = current_collector.set(collector)
    try:
        yield collector
    finally:
        current_collector.reset(token)


def _to_current_collector(event: RunFinished) -> None:
    collector = current_collector.get()
    if collector is not None:
        collector.add(event.result)


subscribe(RunFinished, _to_current_collector)


def report_result(result: ScenarioResult) -> None:
    """Announce a finished run (:class:`RunFinished`); the current collector, if any, keeps it.

    Called by the engine once per run. It never raises: attribution is bookkeeping and must
    not turn a finished run into an error.
    """
    publish(RunFinished(result))
