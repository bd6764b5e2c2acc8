"""Finishing an event loop we own, and handing outcomes between loops, the same way everywhere.

A loop that is simply closed leaves tasks "destroyed but pending", async generators unfinalised
and default-executor threads running. Worker loops, the pytest plugin's loops and the mock
server's loop all end through :func:`drain` first.

Work that runs as a task on one loop for a caller awaiting a future on another (the model loop's
calls, a ``run``'s user code) ends through :func:`settle_future`, and an outcome nobody waits for
any more through :func:`consume_outcome`. Such a task starts in the caller's context through
:func:`create_task_in`.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def drain(loop: asyncio.AbstractEventLoop) -> None:
    """On a loop that is not running: cancel leftover tasks and wait for them, finalise async
    generators, and shut the default executor down. The caller closes the loop afterwards."""
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
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
