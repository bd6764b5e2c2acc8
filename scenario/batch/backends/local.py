"""The default backend: every run is a task on the dispatch loop's own event loop.

Runs use today's executors (a worker thread with its own loop for ``executor="thread"``, this
loop for ``"loop"``); see ``execute.py``. Nothing is serialised and the record keeps the run's
original exception object.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from scenario.batch.backends.base import Backend, Finished, WorkerFailed
from scenario.batch.execute import execute_unit, make_record

if TYPE_CHECKING:  # pragma: no cover
    from scenario.batch.runner import BatchConfig
    from scenario.batch.spec import RunUnit


class InProcess(Backend):
    name = "local"

    def __init__(self) -> None:
        super().__init__()
        self._config: BatchConfig | None = None
        self._parent: Any = None
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._reasons: dict[str, str] = {}

    async def start(self, config: BatchConfig, parent_span: Any) -> None:
        self._config = config
        self._parent = parent_span

    def submit(self, unit: RunUnit) -> None:
        assert self._config is not None and self._loop is not None
        task = self._loop.create_task(
            execute_unit(unit, self._config, self._parent, cancel_reason=lambda: self._reasons.get(unit.id))
        )
        self._tasks[unit.id] = task
        task.add_done_callback(lambda t: self._done(unit, t))

    def _done(self, unit: RunUnit, task: asyncio.Task[Any]) -> None:
        assert self._config is not None
        self._tasks.pop(unit.id, None)
        reason = self._reasons.pop(unit.id, None)
        if task.cancelled():
            # Cancelled before its first step: the run never started, so its record is made here.
            record = make_record(unit, self._config.suite, None, 0, time.time(), 0.0, None,
                                 cancelled=reason or "cancelled")
        else:
            # execute_unit turns every failure of a run into a record; anything else is a bug in
            # the library and must surface, not vanish with the task.
            exc = task.exception()
            if exc is not None:
                self.post(WorkerFailed(exc))
                record = make_record(unit, self._config.suite, None, 0, time.time(), 0.0, None,
                                     cancelled=f"internal error: {type(exc).__name__}: {exc}")
            else:
                record = task.result()
        self.post(Finished(record, "local"))

    def cancel(self, run_ids: Collection[str], reason: str) -> None:
        for run_id in run_ids:
            task = self._tasks.get(run_id)
            if task is not None and not task.done():
                self._reasons[run_id] = reason
                task.cancel()

    async def close(self) -> None:
        # Normally empty: the dispatch loop waits for every run it submitted. After an error in
        # the loop itself, the runs still going are cancelled and awaited, never left behind.
        pending = [t for t in self._tasks.values() if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
