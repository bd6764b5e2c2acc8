"""The one shared, bounded pool of worker threads; idle threads end on their own.

``run`` executes each scenario on a thread from here, and ``arun`` offloads synchronous adapters
here. One pool for the process (not one per call, which is what makes the library we replace
spawn ~2 threads per scenario) whose size is capped by configuration and by free memory, so an
unbounded ``gather`` of runs queues instead of exhausting the machine.

A burst of runs needs many threads for a moment and none afterwards, so a thread that has had
nothing to do for :data:`IDLE_TIMEOUT` seconds ends (the standard ``ThreadPoolExecutor`` keeps
every thread it ever started until shutdown). Code that keeps per-thread resources (the batch
executor keeps a thread's event loop between runs) registers a clean-up with
:func:`at_thread_exit`, which runs on the thread itself as it ends.
"""

from __future__ import annotations

import atexit
import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from scenario import fork
from scenario.concurrency.resources import default_max_workers
from scenario.settings import settings

# Seconds a worker thread waits for work before it ends.
IDLE_TIMEOUT = 2.0

_lock = threading.Lock()
_pool: WorkerPool | None = None
_pool_size = 0
_thread_state = threading.local()


class _WorkItem:
    __slots__ = ("future", "fn", "args", "kwargs")

    def __init__(self, future: Future[Any], fn: Callable[..., Any], args: Any, kwargs: Any):
        self.future, self.fn, self.args, self.kwargs = future, fn, args, kwargs

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:
            self.future.set_exception(exc)
            self = None  # type: ignore[assignment] # break the reference cycle with the traceback
        else:
            self.future.set_result(result)


class WorkerPool(ThreadPoolExecutor):
    """A thread pool of at most ``max_workers`` threads that end after ``idle_timeout`` idle seconds.

    A new thread starts when work is queued and every live thread is busy (so blocking jobs run
    in parallel up to the cap); a thread that waits ``idle_timeout`` seconds (default
    :data:`IDLE_TIMEOUT`, read when it starts waiting) without work ends. A ``ThreadPoolExecutor``
    by type only, so it is accepted wherever one is (``loop.set_default_executor``); none of the
    base class's machinery runs.
    """

    _counter = itertools.count()

    def __init__(self, max_workers: int, *, idle_timeout: float | None = None, thread_name_prefix: str = "scenario-worker"):
        if max_workers < 1:
            raise ValueError(f"WorkerPool(max_workers={max_workers!r}): needs at least one worker")
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)  # attributes only
        self.max_workers = max_workers
        self.idle_timeout = idle_timeout
        self._prefix = thread_name_prefix
        self._queue: queue.SimpleQueue[_WorkItem | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # Both counted under the lock. `unclaimed` counts queued items no thread has taken yet and
        # `idle` counts threads waiting for one; a thread that has just taken an item still counts
        # in both until it books it, so "unclaimed > idle" is exactly "someone would wait".
        self._unclaimed = 0
        self._idle = 0
        self._live: set[threading.Thread] = set()
        self._closed = False

    # -- Executor -------------------------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new work after the scenario worker pool was shut down")
            self._queue.put(_WorkItem(future, fn, args, kwargs))
            self._unclaimed += 1
            if self._unclaimed > self._idle and len(self._live) < self.max_workers:
                self._start_thread()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            if cancel_futures:
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        self._unclaimed -= 1
                        item.future.cancel()
            threads = list(self._live)
            for _ in threads:
                self._queue.put(None)  # one wake-up per thread: each ends when it sees the queue drained
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()

    # -- introspection --------------------------------------------------------------------------
    def thread_count(self) -> int:
        with self._lock:
            return len(self._live)

    # -- threads --------------------------------------------------------------------------------
    def _start_thread(self) -> None:
        name = f"{self._prefix}_{next(self._counter)}"
        thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._live.add(thread)
        self._idle += 1  # counted idle from birth: it is about to wait for the item just queued
        thread.start()

    def _work(self) -> None:
        me = threading.current_thread()
        try:
            while True:
                try:
                    wait = IDLE_TIMEOUT if self.idle_timeout is None else self.idle_timeout
                    item = self._queue.get(timeout=wait)
                except queue.Empty:
                    with self._lock:
                        if self._unclaimed > 0:
                            continue  # queued just as we timed out: it is ours to take
                        self._idle -= 1
                        self._live.discard(me)
                        return
                if item is None:  # shut down: finish the queue, then end
                    with self._lock:
                        if self._unclaimed > 0:
                            continue
                        self._idle -= 1
                        self._live.discard(me)
                        return
                with self._lock:
                    self._unclaimed -= 1
                    self._idle -= 1
                try:
                    item.run()
                finally:
                    del item
                    with self._lock:
                        self._idle += 1
        finally:
            _run_thread_exit_callbacks()


def at_thread_exit(callback: Callable[[], None]) -> None:
    """Run ``callback`` on the current worker thread when it ends (idle timeout or shutdown).

    Outside a pool thread it is never called by the pool; register it only from work running on
    the pool. Each thread runs its callbacks once, in registration order, errors ignored.
    """
    callbacks: list[Callable[[], None]] | None = getattr(_thread_state, "exit_callbacks", None)
    if callbacks is None:
        callbacks = _thread_state.exit_callbacks = []
    callbacks.append(callback)


def _run_thread_exit_callbacks() -> None:
    callbacks = getattr(_thread_state, "exit_callbacks", None) or []
    _thread_state.exit_callbacks = []
    for callback in callbacks:
        try:
            callback()
        except Exception:  # pragma: no cover - clean-up must not kill the thread noisily
            pass


def max_workers() -> int:
    """Worker cap: ``configure(max_workers=...)`` or the memory-aware default."""
    return default_max_workers(settings().max_workers)


def get_pool() -> WorkerPool:
    """The shared pool, created on first use (threads themselves start lazily)."""
    global _pool, _pool_size
    pool = _pool
    if pool is not None:
        return pool
    with _lock:
        if _pool is None:
            _pool_size = max_workers()
            _pool = WorkerPool(_pool_size)
        return _pool


def pool_size() -> int:
    get_pool()
    return _pool_size


def shutdown(wait: bool = True) -> None:
    """Stop the pool (at interpreter exit, or in tests). A later run makes a new one."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=wait, cancel_futures=True)


atexit.register(shutdown, False)

#: Pools a forked child inherited: their threads do not exist there, so they are kept (never shut
#: down or finalized, which would wait for those threads) and never handed out again.
_inherited: list[WorkerPool] = []


@fork.register
def reset_after_fork() -> None:
    """In a forked child: forget the parent's pool (a new one is made on first use) and get a
    fresh lock (see :mod:`scenario.fork`)."""
    global _lock, _pool
    _lock = threading.Lock()
    if _pool is not None:
        _inherited.append(_pool)
        _pool = None
