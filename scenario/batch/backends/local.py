"""The default backend: every run is a task on the dispatch loop's own event loop.

Runs use today's executors (a worker thread with its own loop for ``executor="thread"``, this
loop for ``"loop"``); see ``execute.py``, whose :class:`~scenario.batch.execute.UnitTasks` keeps
the runs in flight. Nothing is serialised and the record keeps the run's original exception
object.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from scenario.batch.backends.base import Backend, Finished, WorkerFailed
from scenario.batch.execute import UnitTasks

if TYPE_CHECKING:  # pragma: no cover
    from scenario.batch.runner import BatchConfig
    from scenario.batch.spec import RunUnit


class InProcess(Backend):
    name = "local"

    def __init__(self) -> None:
        super().__init__()
        self._runs: UnitTasks | None = None
        self._parent: Any = None

    async def start(self, config: BatchConfig, parent_span: Any) -> None:
        self._runs = UnitTasks(config)
        self._parent = parent_span

    def submit(self, unit: RunUnit) -> None:
        assert self._runs is not None
        task = self._runs.start(unit, self._parent)
        task.add_done_callback(lambda t: self._done(unit, t))

    def _done(self, unit: RunUnit, task: asyncio.Task[Any]) -> None:
        assert self._runs is not None
        record, bug = self._runs.finish(unit, task)
        if bug is not None:
            self.post(WorkerFailed(bug))
        self.post(Finished(record, "local"))

    def cancel(self, run_ids: Collection[str], reason: str) -> None:
        if self._runs is not None:
            self._runs.cancel(run_ids, reason)

    async def close(self) -> None:
        # Normally nothing is left: the dispatch loop waits for every run it submitted. After an
        # error in the loop itself, the runs still going are cancelled and awaited, never left behind.
        if self._runs is not None:
            self._runs.cancel_all("cancelled")
            await self._runs.wait_idle()
