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
import threading
from collections import deque
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


class _IdleThread:
    """A worker thread waiting for work: it sleeps on its own lock until handed an item."""

    __slots__ = ("wake", "item", "waiting")

    def __init__(self) -> None:
        self.wake = threading.Lock()
        self.wake.acquire()  # held while the thread sleeps; releasing it is the wake-up
        self.item: _WorkItem | None = None  # None on a wake-up means "the pool shut down"
        self.waiting = False  # on the pool's idle stack (changed under the pool's lock)


class WorkerPool(ThreadPoolExecutor):
    """A thread pool of at most ``max_workers`` threads that end after ``idle_timeout`` idle seconds.

    A new thread starts when work is submitted and every live thread is busy (so blocking jobs run
    in parallel up to the cap); a thread that waits ``idle_timeout`` seconds (default
    :data:`IDLE_TIMEOUT`, read when it starts waiting) without work ends. A ``ThreadPoolExecutor``
    by type only, so it is accepted wherever one is (``loop.set_default_executor``); none of the
    base class's machinery runs.

    Work goes to the thread that became idle last (a stack), so after a burst a trickle of work
    keeps as few threads busy as it needs and the rest time out. Each idle thread sleeps on a lock
    of its own rather than in a shared ``queue.SimpleQueue.get(timeout=...)``: when a busy thread
    takes the item a waiter was just woken for and the waiter's deadline has passed, CPython's
    ``get`` recomputes a negative remaining time and waits without a deadline until the next
    ``put`` (seen on 3.11), which kept an idle thread and the loop it kept alive indefinitely.
    """

    _counter = itertools.count()

    def __init__(self, max_workers: int, *, idle_timeout: float | None = None, thread_name_prefix: str = "scenario-worker"):
        if max_workers < 1:
            raise ValueError(f"WorkerPool(max_workers={max_workers!r}): needs at least one worker")
        if idle_timeout is not None and not idle_timeout >= 0:
            raise ValueError(f"WorkerPool(idle_timeout={idle_timeout!r}): seconds must be 0 or more (None: the default)")
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)  # attributes only
        self.max_workers = max_workers
        self.idle_timeout = idle_timeout
        self._prefix = thread_name_prefix
        # All four under the lock. Work waits in the backlog only while no thread is idle.
        self._lock = threading.Lock()
        self._backlog: deque[_WorkItem] = deque()
        self._idle: list[_IdleThread] = []  # a stack: the last to go idle is handed work first
        self._live: set[threading.Thread] = set()
        self._closed = False

    # -- Executor -------------------------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        item = _WorkItem(future, fn, args, kwargs)
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new work after the scenario worker pool was shut down")
            if self._idle:
                self._wake_last_idle(item)
            else:
                self._backlog.append(item)
                if len(self._live) < self.max_workers:
                    try:
                        self._start_thread()
                    except BaseException:  # no thread for it (the OS refused one): the job is not taken
                        self._backlog.pop()
                        raise
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            if cancel_futures:
                while self._backlog:
                    self._backlog.popleft().future.cancel()
            while self._idle:  # busy threads finish the backlog, then end; idle ones end now
                self._wake_last_idle(None)
            threads = list(self._live)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()

    # -- introspection --------------------------------------------------------------------------
    def thread_count(self) -> int:
        with self._lock:
            return len(self._live)

    # -- threads --------------------------------------------------------------------------------
    def _wake_last_idle(self, item: _WorkItem | None) -> None:
        """Under the lock: hand ``item`` (None: "shut down") to the thread that went idle last."""
        idle = self._idle.pop()
        idle.waiting = False
        idle.item = item
        idle.wake.release()

    def _start_thread(self) -> None:
        name = f"{self._prefix}_{next(self._counter)}"
        thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._live.add(thread)
        try:
            thread.start()
        except BaseException:
            self._live.discard(thread)
            raise

    def _work(self) -> None:
        me = threading.current_thread()
        idle = _IdleThread()
        try:
            while True:
                with self._lock:
                    if self._backlog:
                        item: _WorkItem | None = self._backlog.popleft()
                    elif self._closed:
                        self._live.discard(me)
                        return
                    else:
                        item = None
                        idle.waiting = True
                        self._idle.append(idle)
                if item is None:
                    wait = IDLE_TIMEOUT if self.idle_timeout is None else self.idle_timeout
                    if not idle.wake.acquire(timeout=wait):
                        with self._lock:
                            if idle.waiting:  # nobody picked this thread: it ends
                                self._idle.remove(idle)
                                idle.waiting = False
                                self._live.discard(me)
                                return
                        # Picked just as the wait timed out: the wake-up (released under the
                        # pool's lock, so already done) is this thread's to consume.
                        idle.wake.acquire()
                    item, idle.item = idle.item, None
                    if item is None:  # the pool shut down: finish the backlog, then end
                        continue
                try:
                    item.run()
                finally:
                    del item
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
