"""Finishing an event loop we own, and handing outcomes between loops, the same way everywhere.

A loop that is simply closed leaves tasks "destroyed but pending", async generators unfinalised
and default-executor threads running. Worker loops, the pytest plugin's loops and the mock
server's loop all end through :func:`drain` first.

Work that runs as a task on one loop for a caller awaiting a future on another (the model loop's
calls, a ``run``'s user code) ends through :func:`settle_future`, and an outcome nobody waits for
any more through :func:`consume_outcome`. Such a task starts in the caller's context through
:func:`create_task_in`.

A loop made by :func:`new_worker_loop` knows its own tasks (see :class:`TaskTracker`), so
finishing it does not scan every task of the process.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class TaskTracker:
    """A task factory that remembers the tasks made on its loop (weakly).

    ``asyncio.all_tasks(loop)`` walks every task of the process to find one loop's, so finishing
    each run's loop that way costs CPU that grows with the runs in flight (quadratic overall): the
    largest item on the runs' threads in a profile of 200 concurrent ``run``s, and ~10% of
    ``run``'s own CPU per model call at 800 (docs/performance.md). Each worker loop has a tracker
    instead, and :func:`loop_tasks` asks it. Tasks made by ``loop.create_task``, ``ensure_future`` and ``gather``
    all pass through the factory; if user code installs its own factory the tracker is no longer
    asked and :func:`loop_tasks` falls back to the scan.
    """

    __slots__ = ("tasks", "__weakref__")

    def __init__(self) -> None:
        self.tasks: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()

    def __call__(self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        self.tasks.add(task)
        return task


def new_worker_loop() -> asyncio.AbstractEventLoop:
    """A new event loop (of the current policy's kind) that tracks its own tasks."""
    loop = asyncio.new_event_loop()
    loop.set_task_factory(TaskTracker())
    return loop


def loop_tasks(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
    """The loop's tasks not yet done: from its :class:`TaskTracker` when it has one, else a scan."""
    factory = loop.get_task_factory()
    tasks = factory.tasks if isinstance(factory, TaskTracker) else asyncio.all_tasks(loop)
    return [task for task in list(tasks) if not task.done()]


def drain(loop: asyncio.AbstractEventLoop) -> None:
    """On a loop that is not running: cancel leftover tasks and wait for them, finalise async
    generators, and shut the default executor down. The caller closes the loop afterwards."""
    pending = loop_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    # Each pass below is a full loop run; skip the ones with nothing to do (most worker loops:
    # no async generator was ever started, no default executor ever made).
    if getattr(loop, "_asyncgens", True):
        loop.run_until_complete(loop.shutdown_asyncgens())
    if getattr(loop, "_default_executor", True) is not None:
        loop.run_until_complete(loop.shutdown_default_executor())


def consume_outcome(task: asyncio.Task[Any] | None) -> None:
    """Mark an unwanted task's outcome as seen, so asyncio does not log it as never retrieved."""
    if task is not None and task.done() and not task.cancelled():
        task.exception()


def settle_future(future: asyncio.Future[Any], task: asyncio.Task[Any] | None) -> None:
    """On the future's loop: give it the finished task's result, exception or cancellation. A future
    already done (its caller timed out or was cancelled meanwhile) only consumes the outcome."""
    if future.done() or task is None:
        consume_outcome(task)
    elif task.cancelled():
        future.cancel()
    else:
        exc = task.exception()
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(task.result())


def create_task_in(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], context: contextvars.Context
                   ) -> asyncio.Task[T]:
    """``loop.create_task(coro, context=context)``. Python 3.10's ``create_task`` takes no
    context; there the task starts in a copy of it, which carries the same values in."""
    if sys.version_info >= (3, 11):
        return loop.create_task(coro, context=context)
    return context.run(loop.create_task, coro)
