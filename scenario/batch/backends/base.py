"""Where a batch's runs execute: the contract between the dispatch loop and a backend.

Policy: a backend only *executes* runs. It is handed units one at a time (``submit``), runs each
somewhere (this process, a forked worker, a Ray actor) and reports what happened as events on the
dispatch loop: a finished run's record, runs lost with a worker, or concurrency feedback (429s
seen by a worker). Planning, the concurrency strategy, fail-fast, cancellation, de-duplication,
re-sending lost runs, progress and delivery belong to the dispatch loop, once, for every backend.
That split is what keeps ``processes=N`` and Ray from each growing their own copy of the batch
logic (and their own bugs in it).

Reporting happens through :meth:`Backend.post`, which is safe from any thread: backends usually
hear from their workers on reader threads.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from scenario.records import RunRecord

if TYPE_CHECKING:  # pragma: no cover
    from scenario.batch.runner import BatchConfig
    from scenario.batch.spec import RunUnit

__all__ = ["Backend", "Event", "Feedback", "Finished", "Lost", "WorkerFailed", "WorkerLoads"]


@dataclasses.dataclass
class Finished:
    """A run's record came back from a worker (possibly a duplicate; the loop decides)."""

    record: RunRecord
    worker: str | None = None


@dataclasses.dataclass
class Lost:
    """These runs were on a worker that is gone; they may or may not have finished there."""

    run_ids: list[str]
    worker: str
    reason: str


@dataclasses.dataclass
class Feedback:
    """A concurrency signal seen on a worker: ``rate_limited``, ``success`` or ``error``."""

    kind: str
    retry_after: float | None = None
    message: str = ""


@dataclasses.dataclass
class WorkerFailed:
    """The backend cannot go on (a worker crashed outside any run, the cluster went away)."""

    error: BaseException


Event = Finished | Lost | Feedback | WorkerFailed


class Backend(abc.ABC):
    """Executes runs for the dispatch loop. One instance serves one batch."""

    #: Short name for metadata and messages.
    name: str = "backend"

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sink: Any = None

    def bind(self, loop: asyncio.AbstractEventLoop, sink: Any) -> None:
        """Called by the dispatch loop before :meth:`start`: where events go."""
        self._loop = loop
        self._sink = sink

    def post(self, event: Event) -> None:
        """Report an event to the dispatch loop; safe from any thread, a no-op once it closed."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._sink(event)
        else:
            try:
                loop.call_soon_threadsafe(self._sink, event)
            except RuntimeError:  # the loop closed meanwhile: nobody is listening any more
                pass

    @abc.abstractmethod
    async def start(self, config: BatchConfig, parent_span: Any) -> None:
        """Get workers ready (may take seconds: imports, forks, a cluster)."""

    @abc.abstractmethod
    def submit(self, unit: RunUnit) -> None:
        """Start ``unit`` on a worker now (never blocks; the dispatch loop already holds a slot)."""

    @abc.abstractmethod
    def cancel(self, run_ids: Collection[str], reason: str) -> None:
        """Ask the workers to stop these runs; each still reports a (cancelled) record."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop every worker and release what :meth:`start` took (always called, also after errors)."""

    def metadata(self) -> dict[str, Any]:
        """What this backend adds to ``BatchResult.metadata``."""
        return {}


class WorkerLoads:
    """Which runs each worker of a multi-worker backend holds, and which workers still take runs.

    One home for the choice the forked-processes and Ray backends both make: a run goes to the
    worker that takes runs and holds the fewest (the lowest index on a tie), so a slow run never
    holds back others queued behind it. Used from the dispatch loop only (not thread-safe).
    """

    def __init__(self, workers: int = 0) -> None:
        self._runs: list[set[str]] = [set() for _ in range(workers)]
        self._taking: list[bool] = [True] * workers

    def add_worker(self) -> int:
        """One more worker, taking runs; returns its index."""
        self._runs.append(set())
        self._taking.append(True)
        return len(self._runs) - 1

    def __len__(self) -> int:
        return len(self._runs)

    def taking(self, which: int) -> bool:
        """Whether ``which`` still takes runs (and commands)."""
        return self._taking[which]

    @property
    def taking_count(self) -> int:
        return sum(self._taking)

    def assign(self, run_id: str) -> int | None:
        """The least-loaded worker that takes runs, now holding ``run_id``; None if none does."""
        candidates = [i for i, taking in enumerate(self._taking) if taking]
        if not candidates:
            return None
        which = min(candidates, key=lambda i: (len(self._runs[i]), i))
        self._runs[which].add(run_id)
        return which

    def release(self, which: int, run_id: str) -> None:
        """``which`` no longer holds ``run_id`` (its record came back, or it never got there)."""
        self._runs[which].discard(run_id)

    def stop_taking(self, which: int) -> None:
        """Send ``which`` nothing more; the runs it holds are still its own to report."""
        self._taking[which] = False

    def retire(self, which: int) -> set[str]:
        """``which`` is gone: it takes nothing more, and the runs it held are returned (held by
        nobody now: lost, unless their records arrived some other way)."""
        self._taking[which] = False
        runs, self._runs[which] = self._runs[which], set()
        return runs

    def holding(self, run_ids: Collection[str]) -> list[tuple[int, list[str]]]:
        """The workers taking commands that hold any of ``run_ids``, each with those runs (sorted)."""
        wanted = set(run_ids)
        return [(which, sorted(runs & wanted)) for which, runs in enumerate(self._runs)
                if self._taking[which] and runs & wanted]
