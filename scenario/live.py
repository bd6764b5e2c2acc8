"""Transcripts of runs in flight, for ``scenario view``'s live pages.

Policy: only a batch that records into a store publishes live transcripts, and only for runs that
last long enough for someone to watch: nothing is written during a run's first
``LIVE_AFTER`` seconds (a fast run's finished record arrives before a page could show it), then
at most one write per run every ``LIVE_EVERY`` seconds. So a batch against a real model shows its
conversations growing turn by turn, and a fast batch pays nothing. The finished record replaces
the live transcript; the stored batch removes it.

The engine calls :func:`message_added` on every message; it is a ContextVar read when nothing
is listening. The batch runner names the run in flight with :func:`running`; the stored batch
installs the :class:`LiveSink`. Runs on forked ``processes=N`` workers publish no live transcript
(see :func:`reset_after_fork`).
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scenario import fork

LIVE_AFTER = 0.5
LIVE_EVERY = 0.5


@dataclass(frozen=True)
class LiveRun:
    """Which run of a batch a conversation belongs to."""

    id: str
    suite: str
    scenario: str
    variant: str
    index: int


current_sink: contextvars.ContextVar[LiveSink | None] = contextvars.ContextVar("scenario_live_sink", default=None)
current_live_run: contextvars.ContextVar[LiveRun | None] = contextvars.ContextVar("scenario_live_run", default=None)


@fork.register
def reset_after_fork() -> None:
    """In a forked child (see :mod:`scenario.fork`): no live transcripts from here.

    The child inherits the forking thread's context, and with it the parent's sink, whose store
    connection belongs to the parent (SQLite connections must not cross a fork). The child's
    runs report their records to the parent, which stores them.
    """
    current_sink.set(None)


def running(run_id: str, suite: str, scenario: str, variant: str, index: int) -> Any:
    """Mark the current context as running this run (returns the token for ``reset``)."""
    return current_live_run.set(LiveRun(run_id, suite, scenario, variant, index))


def message_added(messages: Sequence[dict[str, Any]], turn: int) -> None:
    """Called by the engine after each message; publishes when a sink and a run are set."""
    sink = current_sink.get()
    if sink is None:
        return
    run = current_live_run.get()
    if run is not None:
        sink.update(run, messages, turn)


class LiveSink:
    """Writes live transcripts of one batch into its store, throttled per run (thread-safe:
    runs may be on worker threads)."""

    def __init__(self, store: Any, batch_id: str, *, after: float = LIVE_AFTER, every: float = LIVE_EVERY):
        self.store = store
        self.batch_id = batch_id
        self.after = after
        self.every = every
        self._lock = threading.Lock()
        self._first_seen: dict[str, float] = {}
        self._last_write: dict[str, float] = {}
        self.failed = False

    def update(self, run: LiveRun, messages: Sequence[dict[str, Any]], turn: int) -> None:
        now = time.monotonic()
        with self._lock:
            first = self._first_seen.setdefault(run.id, now)
            last = self._last_write.get(run.id)
            if self.failed or now - first < self.after or (last is not None and now - last < self.every):
                return
            self._last_write[run.id] = now
        snapshot: list[dict[str, Any]] = [dict(m) for m in messages]
        try:
            self.store.put_live(self.batch_id, run.id, suite=run.suite, scenario=run.scenario, variant=run.variant,
                                index=run.index, turn=turn, messages=snapshot)
        except Exception:  # a live view is a convenience: never fail a run over it
            self.failed = True

    def finished(self, run_id: str) -> None:
        """The run's record is stored: drop its live transcript (if one was written)."""
        with self._lock:
            self._first_seen.pop(run_id, None)
            wrote = self._last_write.pop(run_id, None) is not None
        if wrote:
            try:
                self.store.drop_live(self.batch_id, run_id)
            except Exception:
                pass

    def close(self) -> None:
        """The batch ended: remove whatever live rows are left (cancelled runs)."""
        with self._lock:
            wrote = bool(self._last_write)
            self._first_seen.clear()
            self._last_write.clear()
        if wrote:
            try:
                self.store.drop_live(self.batch_id)
            except Exception:
                pass
