"""Hand every finished scenario result to whoever asked to see it.

The pytest plugin wants each ``scenario.run``/``arun`` result that happens inside a test (or
inside one repetition of a test) attributed to that test, without the test passing anything
around. A ``ContextVar`` gives exactly that: the plugin installs a :class:`ResultCollector`
around the test body, the engine calls :func:`report_result` when a run is final, and because
``run`` copies the caller's context into its worker thread and every asyncio task gets its own
copy, concurrent tests and concurrent repetitions each see only their own collector.

This module is imported by the engine on every run, so it stays tiny and dependency-free.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from scenario.result import ScenarioResult
    from scenario.usage import Usage

__all__ = ["ResultCollector", "collecting", "current_collector", "report_result"]


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
        from scenario.usage import Usage

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


def report_result(result: ScenarioResult) -> None:
    """Give a finished result to the current collector; without one, do nothing.

    Called by the engine once per run. It never raises: attribution is bookkeeping and must
    not turn a finished run into an error.
    """
    collector = current_collector.get()
    if collector is None:
        return
    try:
        collector.add(result)
    except Exception:  # pragma: no cover - defensive: a broken observer must not fail a run
        pass
