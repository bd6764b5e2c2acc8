"""A coroutine run on an event loop of its own, in a worker-pool thread: ``run``'s runtime.

Two shapes, both owned here and both shut down before their caller goes on:

* :func:`run_on_worker_loop` runs one coroutine to completion on a fresh loop in a pool thread
  (a scripted ``run`` sends its whole engine there in one hop).
* :class:`RunThread` is a pool thread running one loop for a whole run; the engine, which stays on
  the caller's loop, sends each piece of user code there (the agent under test, script steps,
  callbacks) and awaits the outcome, so a blocking agent sees one loop from its first turn to its
  last and blocks only its own thread.

Policy: every loop made here has an owner that closes it; cancelling the awaiting task cancels
the work on the other loop and waits (at most ``CANCEL_GRACE`` seconds) for it to unwind. A loop
that does not even take the stop within ``UNBLOCK_GRACE`` seconds is held by synchronous user
code, which nothing can interrupt: the caller goes on (with a warning) and the loop is closed by
its own thread when that code returns. The caller's ``contextvars`` (the run context, the current
span) travel with every piece of work.
Batches may ask a thread to keep a loop its previous run left exactly as new (``reuse_loop``),
which saves making and closing one per run.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from scenario.runtime.event_loops import (
    TaskTracker,
    consume_outcome,
    create_task_in,
    drain,
    loop_tasks,
    new_worker_loop,
    settle_future,
)
from scenario.runtime.worker_pool import at_thread_exit, get_pool

__all__ = ["CANCEL_GRACE", "UNBLOCK_GRACE", "RunThread", "run_on_worker_loop"]

T = TypeVar("T")

logger = logging.getLogger(__name__)

# How long a cancelled run waits for its worker loop to unwind before giving up on it.
CANCEL_GRACE = 10.0
# How long a stopped run waits for its worker loop to take the stop at all. A loop that is free
# takes it within milliseconds; one that has not after this long is held by a synchronous call (an
# agent blocking in `time.sleep` or a sync HTTP client), and waiting longer would only delay the
# result. Seconds rather than less, so that a loop merely waiting for the GIL on a busy machine
# is not mistaken for a blocked one.
UNBLOCK_GRACE = 2.0


async def _wait_unwound(job: asyncio.Future[Any], taken: Callable[[], bool], label: str,
                        thread: Callable[[], str | None]) -> None:
    """After a worker job was told to stop: wait for it to end, up to ``CANCEL_GRACE`` seconds
    while its loop is responsive (``taken()``: the stop was seen there), but only
    ``UNBLOCK_GRACE`` when synchronous user code holds its thread."""
    await asyncio.wait({job}, timeout=UNBLOCK_GRACE)
    if not job.done() and taken():
        await asyncio.wait({job}, timeout=CANCEL_GRACE - UNBLOCK_GRACE)
    if not job.done():
        where = thread()
        if where is None:  # still queued for a thread (the pool is at its cap): it ends as soon as it starts
            return
        logger.warning(
            "%s: its user code was still running on thread %s after the run timed out or was cancelled, in a "
            "synchronous call that has not returned (Python cannot interrupt a thread). The run has returned; "
            "that code's loop is closed when the call returns. Make the agent return, or give its blocking "
            "client a timeout.",
            label, where,
        )


class _WorkerLoopJob:
    """One coroutine run to completion on a fresh loop in a pool thread, cancellable from outside."""

    def __init__(self, make_coro: Callable[[], Awaitable[T]], reuse_loop: bool = False):
        self._make_coro = make_coro
        self._reuse_loop = reuse_loop
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False
        self.cancel_taken = False  # the worker loop ran the cancellation (it is not blocked)
        self.thread_name: str | None = None

    def __call__(self) -> Any:
        self.thread_name = threading.current_thread().name
        loop = _open_thread_loop(self._reuse_loop)
        try:
            with self._lock:
                if self._cancelled:
                    raise asyncio.CancelledError()
                self._task = loop.create_task(self._make_coro())  # type: ignore[arg-type]
                self._loop = loop
            return loop.run_until_complete(self._task)
        finally:
            with self._lock:
                self._loop = None
            _close_thread_loop(loop, self._reuse_loop)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._loop is not None and self._task is not None:
                self._loop.call_soon_threadsafe(self._cancel_task, self._task)

    def _cancel_task(self, task: asyncio.Task[Any]) -> None:
        self.cancel_taken = True
        task.cancel()


# Opt-in (run_batch's thread executor): a worker thread keeps the loop of its last run when that
# run left nothing behind on it, and its next run starts there instead of on a new one. A loop left exactly as new is
# indistinguishable from a new loop, and making and closing one costs more CPU than a short
# scripted run (epoll instance, self-pipe, three shutdown passes): about a third of a `run`'s
# overhead in the batch benchmarks. Any trace of the run (a task, an async generator, a default
# executor, a reader, a timer, a handler) and the loop is shut down and closed as before.
_thread_loop = threading.local()


# Kept loops inherited by a forked child (whose threads are gone): never closed there, because
# closing would unregister the self-pipe from the epoll instance the child shares with its parent.
_inherited_loops: list[asyncio.AbstractEventLoop] = []


class _KeptLoop:
    """Holds a thread's idle loop and closes it when the thread ends (no unclosed-loop warning)."""

    __slots__ = ("loop", "pid")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop: asyncio.AbstractEventLoop | None = loop
        self.pid = os.getpid()

    def __del__(self) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        if os.getpid() != self.pid:
            _inherited_loops.append(loop)
        elif not loop.is_running():
            loop.close()


def _open_thread_loop(reuse: bool) -> asyncio.AbstractEventLoop:
    """This thread's loop for one job: the one its last job kept (``reuse``), else a new one."""
    if reuse:
        return _take_thread_loop()
    loop = new_worker_loop()
    asyncio.set_event_loop(loop)
    return loop


def _close_thread_loop(loop: asyncio.AbstractEventLoop, reuse: bool) -> None:
    """After the job: keep a pristine loop for the thread's next job (``reuse``), else shut it down."""
    if reuse:
        _give_back_thread_loop(loop)
    else:
        _shutdown_loop(loop)


def _take_thread_loop() -> asyncio.AbstractEventLoop:
    kept = getattr(_thread_loop, "kept", None)
    _thread_loop.kept = None
    loop: asyncio.AbstractEventLoop | None = None
    if kept is not None:
        loop, kept.loop = kept.loop, None  # taken back: the holder must not close it any more
    if loop is None or loop.is_closed():
        loop = new_worker_loop()
    asyncio.set_event_loop(loop)
    return loop


def _give_back_thread_loop(loop: asyncio.AbstractEventLoop) -> None:
    if _is_pristine(loop):
        asyncio.set_event_loop(None)
        _thread_loop.kept = _KeptLoop(loop)
        if not getattr(_thread_loop, "closes_at_exit", False):
            _thread_loop.closes_at_exit = True
            at_thread_exit(_close_kept_loop)  # the pool ends idle threads: the loop goes with it
        return
    _shutdown_loop(loop)


def _close_kept_loop() -> None:
    """On a worker thread that is ending: close the loop it kept (its epoll and self-pipe)."""
    kept = getattr(_thread_loop, "kept", None)
    _thread_loop.kept = None
    loop = kept.loop if kept is not None else None
    if kept is not None:
        kept.loop = None
    if loop is not None and not loop.is_closed():
        _shutdown_loop(loop)


def _is_pristine(loop: asyncio.AbstractEventLoop) -> bool:
    """True when the loop holds nothing a run could have left: no task, callback, live timer,
    async generator, default executor, registered file descriptor besides its own self-pipe,
    signal handler, custom exception handler or task factory (ours, the tracker, is expected),
    debug mode."""
    try:
        if loop.is_closed() or loop.get_debug() or not isinstance(loop.get_task_factory(), TaskTracker):
            return False
        if loop.get_exception_handler() is not None:
            return False
        if getattr(loop, "_ready", True) or getattr(loop, "_asyncgens", True):
            return False
        if getattr(loop, "_default_executor", True) is not None or getattr(loop, "_signal_handlers", True):
            return False
        scheduled = getattr(loop, "_scheduled", None)
        if scheduled is None or any(not handle.cancelled() for handle in scheduled):
            return False
        selector = getattr(loop, "_selector", None)
        if selector is None or len(selector.get_map()) != 1:
            return False
        return not loop_tasks(loop)
    except Exception:  # an unfamiliar loop implementation: do not keep it
        return False


def _shutdown_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Close a worker loop for good: stray tasks, async generators, default executor, then close."""
    try:
        drain(loop)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


async def run_on_worker_loop(make_coro: Callable[[], Awaitable[T]], *, reuse_loop: bool = False,
                             label: str = "a run") -> T:
    """Await ``make_coro()`` executed on a fresh loop in a worker thread, with our context.

    ``reuse_loop=True`` (batches) lets the thread start on the loop its previous job left
    pristine (see ``_is_pristine``) instead of making a new one.

    Cancelling the awaiting task cancels the worker's task and waits (boundedly) for its loop to
    shut down, so a cancelled batch leaves no loop or thread behind; unless synchronous code holds
    that loop, which is then left to close itself (a warning names ``label``).
    """
    job = _WorkerLoopJob(make_coro, reuse_loop)
    context = contextvars.copy_context()
    future = asyncio.wrap_future(get_pool().submit(context.run, job))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        job.cancel()
        await _wait_unwound(future, lambda: job.cancel_taken, label, lambda: job.thread_name)
        if future.done() and not future.cancelled():
            future.exception()  # consumed: the cancellation below is what the caller sees
        raise


_UNSET = object()


class _UserCall:
    """One call of user code (an adapter, a script step, a callback) sent to a run's own loop."""

    __slots__ = ("fn", "args", "context", "sent", "finished", "caller", "future", "task", "abandoned")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], caller: asyncio.AbstractEventLoop,
                 future: asyncio.Future[Any], carried: dict[contextvars.ContextVar[Any], Any]):
        self.fn = fn
        self.args = args
        # The engine's context (the run, the current span) with what earlier user calls of this
        # run set on top, so a contextvar a script step sets is seen by later steps and the agent,
        # as under ``arun`` where all of them share the run's task context.
        self.context = contextvars.copy_context()
        for var, value in carried.items():
            self.context.run(var.set, value)
        self.sent = self.context.copy()  # a snapshot (O(1)), to tell afterwards what this call changed
        self.finished: contextvars.Context | None = None  # its context when it ended
        self.caller = caller
        self.future = future
        self.task: asyncio.Task[Any] | None = None
        self.abandoned = False


class RunThread:
    """Where a ``run``'s user code executes: a pool thread running a fresh event loop for the
    whole run, started on the first call and shut down by :meth:`close`.

    The engine stays on the caller's loop and sends each piece of user code here (the agent under
    test, script steps, callbacks), so the agent sees one loop of its own from its first turn to
    its last and may block its thread; the library's own agents and every model call never wake
    this thread. Each call gets a copy of the engine's context (the run, the current span) plus
    the contextvars earlier calls of the run set.
    """

    def __init__(self, *, reuse_loop: bool = False, label: str = "a run"):
        self._reuse_loop = reuse_loop
        self._label = label  # names the run in the warning about code that does not return
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: list[_UserCall] = []  # sent before the thread's loop was up
        self._job: asyncio.Future[Any] | None = None
        self._stop = False
        self._stop_taken = False  # the run's loop left run_forever: no user code holds it
        self._thread_name: str | None = None
        # contextvars the run's user code set, carried into its later calls (caller's loop only)
        self._carried: dict[contextvars.ContextVar[Any], Any] = {}

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` (awaited if it returns an awaitable) on this run's loop; its outcome here."""
        caller = asyncio.get_running_loop()
        item = _UserCall(fn, args, caller, caller.create_future(), self._carried)
        with self._lock:
            loop = self._loop
            if loop is None:
                self._waiting.append(item)
        if loop is not None:
            loop.call_soon_threadsafe(self._start, item)
        elif self._job is None:
            self._job = asyncio.wrap_future(get_pool().submit(self._serve))
        try:
            value = await item.future
        except asyncio.CancelledError:  # the run timed out or was cancelled: stop the call there too
            item.abandoned = True
            with self._lock:
                loop = self._loop
            if loop is not None:
                try:
                    loop.call_soon_threadsafe(_cancel_user_call, item)
                except RuntimeError:  # already closed: nothing left to cancel
                    pass
            raise
        except BaseException:
            self._carry(item)
            raise
        self._carry(item)
        return value

    def _carry(self, item: _UserCall) -> None:
        """Remember what the finished call set in its context, for the run's next calls."""
        sent = item.sent
        for var, value in (item.finished or item.context).items():
            if sent.get(var, _UNSET) is not value:
                self._carried[var] = value

    async def close(self) -> None:
        """Stop the loop and wait until it is shut down (or kept): at most ``CANCEL_GRACE``
        seconds, or ``UNBLOCK_GRACE`` when a call that does not return holds it (a timed-out run
        whose sync agent still blocks)."""
        job = self._job
        if job is None:
            return
        with self._lock:
            self._stop = True
            loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:
                pass
        await _wait_unwound(job, lambda: self._stop_taken, self._label, lambda: self._thread_name)
        if job.done() and not job.cancelled():
            job.exception()  # a failure here is the pool's, already reported by the call it broke

    # -- on the run's thread --------------------------------------------------------------------
    def _serve(self) -> None:
        self._thread_name = threading.current_thread().name
        loop = _open_thread_loop(self._reuse_loop)
        try:
            with self._lock:
                self._loop = loop
                waiting, self._waiting = self._waiting, []
                stop = self._stop
            for item in waiting:
                self._start(item)
            if stop:
                loop.call_soon(loop.stop)
            loop.run_forever()
            self._stop_taken = True
        finally:
            with self._lock:
                self._loop = None
            _close_thread_loop(loop, self._reuse_loop)

    def _start(self, item: _UserCall) -> None:
        if item.abandoned:
            return
        loop = asyncio.get_running_loop() if self._loop is None else self._loop
        task = create_task_in(loop, _execute(item), item.context)
        item.task = task
        task.add_done_callback(functools.partial(_answer, item))


async def _execute(item: _UserCall) -> Any:
    try:
        value = item.fn(*item.args)
        if inspect.isawaitable(value):
            value = await value
        return value
    finally:
        # What the user code left in its context (on Python 3.10 the task runs in a copy of
        # item.context, so this is read here, from inside the task).
        item.finished = contextvars.copy_context()


def _answer(item: _UserCall, _task: asyncio.Task[Any]) -> None:
    """On the run's loop, when its call is done: wake the caller's loop with the outcome."""
    if item.abandoned:
        consume_outcome(item.task)
        return
    try:
        item.caller.call_soon_threadsafe(_settle_user_call, item)
    except RuntimeError:  # the caller's loop is gone: nobody waits any more
        consume_outcome(item.task)


def _settle_user_call(item: _UserCall) -> None:
    settle_future(item.future, item.task)


def _cancel_user_call(item: _UserCall) -> None:
    if item.task is not None and not item.task.done():
        item.task.cancel()
