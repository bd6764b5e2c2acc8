"""Concurrency strategies: how many scenarios (or model calls) may be in flight at once.

Why this module does not use ``asyncio.Semaphore``
--------------------------------------------------
The library has two executors. ``run`` executes every scenario on its own, fresh
event loop inside a worker thread; ``arun`` runs them on the caller's loop. One
strategy object is shared by all of them, so the same limit has to be enforced
across *many threads and many event loops at once*. An ``asyncio.Semaphore`` is
bound to a single loop (and is not thread-safe), so it cannot do that.

Instead every strategy keeps its state behind a ``threading.Lock`` and parks each
waiter on a future that belongs to *the waiter's own running loop*. Whoever frees
a slot (any thread, any loop) hands it directly to the oldest waiter and wakes
that waiter with ``loop.call_soon_threadsafe``. Properties:

* FIFO: a slot is never grabbed by a newcomer while someone is waiting, it is
  handed over to the head of the queue (``in_flight`` is incremented on the
  waiter's behalf at hand-over time, so nobody can barge in between).
* Cancellation-safe: a cancelled waiter removes itself; a slot handed to a waiter
  that was cancelled in the meantime is passed on to the next waiter, never leaked.
* Closed loops are tolerated: a waiter whose loop has been closed is treated as
  cancelled, and a slot handed to it is reclaimed.
* ``resize`` changes the limit in place; growing it wakes waiters immediately,
  shrinking it never pre-empts running work (the excess simply drains).

``current_strategy`` (a ``ContextVar``) plus :func:`notify_rate_limited` /
:func:`notify_success` / :func:`notify_error` let code deep inside a scenario
report 429s to whichever strategy is running it without plumbing the object
through every layer. The model-call path does not call them: it publishes
``scenario.events.RateLimited`` / ``ModelCallFinished``, which this module
subscribes to (at the bottom) and forwards to the current strategy. The executors copy the context into worker threads,
so this also works for ``run``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import contextvars
import logging
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator
from typing import Any

from scenario import fork
from scenario.checks import check_int
from scenario.events import ModelCallFinished, RateLimited, subscribe

__all__ = [
    "Adaptive",
    "ConcurrencyStrategy",
    "SlidingWindow",
    "current_strategy",
    "notify_error",
    "notify_rate_limited",
    "notify_success",
    "use_strategy",
]

logger = logging.getLogger(__name__)

# Waiter states. Transitions happen only under the strategy's lock.
_WAITING = 0  # queued, no slot yet
_GRANTED = 1  # a slot was reserved for it (counted in in_flight), not yet picked up
_CLAIMED = 2  # its task resumed and owns the slot
_DROPPED = 3  # cancelled / loop closed before a slot was granted

# Cap on how long a server-provided Retry-After may freeze Adaptive's growth, so
# a bogus header cannot pin the limit for an hour.
_MAX_HOLD_SECONDS = 60.0


class _Waiter:
    __slots__ = ("loop", "fut", "state")

    def __init__(self, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None]) -> None:
        self.loop = loop
        self.fut = fut
        self.state = _WAITING


def _wake(fut: asyncio.Future[None]) -> None:
    # Runs on the waiter's own loop. The future may have been cancelled meanwhile;
    # the waiter's cancellation handler then passes the slot on.
    if not fut.done():
        fut.set_result(None)


def _check_int(owner: str, name: str, value: Any, minimum: int | None) -> int:
    # ScenarioConfigError (a ValueError, not TypeError) for a wrong type too: callers handle one
    # exception type for "bad concurrency argument", e.g. from config files.
    return check_int(value, owner, name, minimum=minimum)


# Every live strategy, so a forked child can reset them.
_instances: weakref.WeakSet[ConcurrencyStrategy] = weakref.WeakSet()


@fork.register
def reset_after_fork() -> None:
    """In a forked child: every strategy forgets the parent's holders and waiters and gets a
    fresh lock (see :mod:`scenario.fork`); limits and counters are kept."""
    for strategy in list(_instances):
        strategy._reset_after_fork()


class _Slot:
    """``async with strategy.slot(): ...`` -- acquire on enter, release on exit."""

    __slots__ = ("_strategy",)

    def __init__(self, strategy: ConcurrencyStrategy) -> None:
        self._strategy = strategy

    async def __aenter__(self) -> ConcurrencyStrategy:
        await self._strategy.acquire()
        return self._strategy

    async def __aexit__(self, *exc_info: object) -> None:
        self._strategy.release()


class ConcurrencyStrategy(abc.ABC):
    """A limit on work in flight, safe to share across threads and event loops.

    Subclasses decide how the limit reacts to feedback (:meth:`on_success`,
    :meth:`on_rate_limited`, :meth:`on_error`); the gate itself lives here.
    """

    def __init__(self, limit: int) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._in_flight = 0
        # Lazily cleaned queue: cancelled waiters stay in the deque marked
        # _DROPPED (O(1) cancellation) and are skipped when popped;
        # _n_waiting counts the live ones.
        self._waiters: deque[_Waiter] = deque()
        self._n_waiting = 0
        # Slots handed over whose task has not resumed yet. If that task's loop
        # gets closed before it runs, the slot would be lost; these are swept.
        self._unclaimed: set[_Waiter] = set()
        self._increases = 0
        self._decreases = 0
        self._rate_limited = 0
        self._successes = 0
        self._errors = 0
        _instances.add(self)

    def _reset_after_fork(self) -> None:
        # A forked child has only the forking thread. The lock may have been
        # held by another parent thread at fork time (it would never be released
        # here), and holders/waiters are the parent's tasks on the parent's loops.
        self._lock = threading.Lock()
        self._in_flight = 0
        self._waiters.clear()
        self._n_waiting = 0
        self._unclaimed.clear()

    # ------------------------------------------------------------------ state
    @property
    def limit(self) -> int:
        """Current maximum number of holders."""
        return self._limit

    @property
    def in_flight(self) -> int:
        """Slots currently held (including ones handed to a waiter that has not resumed yet)."""
        return self._in_flight

    @property
    def waiting(self) -> int:
        """Number of tasks queued in :meth:`acquire`."""
        return self._n_waiting

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of the counters, for logs, reports and tests."""
        with self._lock:
            return {
                "strategy": type(self).__name__,
                "limit": self._limit,
                "in_flight": self._in_flight,
                "waiting": self._n_waiting,
                "increases": self._increases,
                "decreases": self._decreases,
                "rate_limited": self._rate_limited,
                "successes": self._successes,
                "errors": self._errors,
            }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(limit={self._limit}, in_flight={self._in_flight}, "
            f"waiting={self._n_waiting})"
        )

    # ------------------------------------------------------------------- gate
    async def acquire(self) -> None:
        """Wait (FIFO) until a slot is free and take it.

        Safe to call from any thread's running event loop. If the calling task
        is cancelled while waiting, nothing is held afterwards.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            # Fast path. No barging: if anyone is queued, join the queue.
            if self._n_waiting == 0 and self._in_flight < self._limit:
                self._in_flight += 1
                return
            waiter = _Waiter(loop, loop.create_future())
            self._waiters.append(waiter)
            self._n_waiting += 1
            # Someone may be parked on a loop that has since been closed while
            # holding a handed-over slot; recover it now rather than wait behind it.
            grants = self._grant_locked() if self._unclaimed else []
        self._dispatch(grants)
        try:
            await waiter.fut
        except BaseException:
            grants = []
            with self._lock:
                if waiter.state == _GRANTED:
                    # A slot was handed to us but we will not use it: pass it on.
                    self._unclaimed.discard(waiter)
                    self._in_flight -= 1
                    grants = self._grant_locked()
                elif waiter.state == _WAITING:
                    waiter.state = _DROPPED
                    self._n_waiting -= 1
                waiter.state = _DROPPED
            self._dispatch(grants)
            raise
        with self._lock:
            waiter.state = _CLAIMED
            self._unclaimed.discard(waiter)

    def release(self) -> None:
        """Give a slot back. Callable from any thread, with or without a running loop."""
        with self._lock:
            if self._in_flight <= 0:
                raise RuntimeError(f"{type(self).__name__}.release() called more times than acquire()")
            self._in_flight -= 1
            grants = self._grant_locked()
        self._dispatch(grants)

    def slot(self) -> _Slot:
        """Async context manager: ``async with strategy.slot(): ...``.

        It only acquires/releases; report outcomes with :meth:`on_success`,
        :meth:`on_rate_limited` or :meth:`on_error` (or the ``notify_*`` helpers).
        """
        return _Slot(self)

    def resize(self, new_limit: int) -> None:
        """Change the limit in place.

        Growing wakes as many waiters as the new room allows. Shrinking does not
        interrupt holders; new grants resume once ``in_flight`` drops below it.
        """
        _check_int(f"{type(self).__name__}.resize", "new_limit", new_limit, 1)
        with self._lock:
            self._limit = self._clamp(new_limit)
            grants = self._grant_locked()
        self._dispatch(grants)

    def _clamp(self, value: int) -> int:
        return value

    # --------------------------------------------------------------- feedback
    @abc.abstractmethod
    def on_success(self) -> None:
        """A call/run completed fine."""

    @abc.abstractmethod
    def on_rate_limited(self, retry_after: float | None = None) -> None:
        """A 429 / overload signal was observed."""

    @abc.abstractmethod
    def on_error(self, exc: BaseException) -> None:
        """Some other failure was observed."""

    # --------------------------------------------------------------- internals
    def _grant_locked(self) -> list[_Waiter]:
        """Hand free slots to the oldest live waiters. Caller holds the lock and
        must pass the result to :meth:`_dispatch` after releasing it."""
        if self._unclaimed:
            for w in [w for w in self._unclaimed if w.loop.is_closed()]:
                # Its loop closed before the task could resume: the slot is
                # unusable by it, so take it back.
                self._unclaimed.discard(w)
                w.state = _DROPPED
                self._in_flight -= 1
        granted: list[_Waiter] = []
        while self._waiters and self._in_flight < self._limit:
            w = self._waiters.popleft()
            if w.state != _WAITING:
                continue  # already cancelled, lazily removed
            self._n_waiting -= 1
            if w.fut.cancelled() or w.loop.is_closed():
                # Cancelled but its handler has not run yet, or its loop is gone.
                w.state = _DROPPED
                continue
            w.state = _GRANTED
            self._in_flight += 1
            self._unclaimed.add(w)
            granted.append(w)
        return granted

    def _dispatch(self, grants: list[_Waiter]) -> None:
        """Wake granted waiters on their own loops (outside the lock: waking
        another loop must never happen while we block other threads)."""
        while grants:
            try:
                current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:
                current = None
            dead: list[_Waiter] = []
            for w in grants:
                try:
                    if w.loop is current:
                        _wake(w.fut)
                    else:
                        w.loop.call_soon_threadsafe(_wake, w.fut)
                except RuntimeError:  # "Event loop is closed"
                    dead.append(w)
            if not dead:
                return
            with self._lock:
                for w in dead:
                    if w.state == _GRANTED:
                        self._unclaimed.discard(w)
                        w.state = _DROPPED
                        self._in_flight -= 1
                grants = self._grant_locked()


class SlidingWindow(ConcurrencyStrategy):
    """At most ``max_concurrency`` in flight; the next one starts the moment one finishes.

    Feedback is only counted (see :meth:`snapshot`); the limit changes only via
    an explicit :meth:`resize`.
    """

    def __init__(self, max_concurrency: int) -> None:
        _check_int("SlidingWindow", "max_concurrency", max_concurrency, 1)
        super().__init__(max_concurrency)

    @property
    def max_concurrency(self) -> int:
        return self._limit

    def on_success(self) -> None:
        with self._lock:
            self._successes += 1

    def on_rate_limited(self, retry_after: float | None = None) -> None:
        with self._lock:
            self._rate_limited += 1

    def on_error(self, exc: BaseException) -> None:
        with self._lock:
            self._errors += 1


class Adaptive(ConcurrencyStrategy):
    """AIMD (additive increase, multiplicative decrease) concurrency limit.

    * Slow start: until the first rate-limit signal, each full round *doubles* the
      limit (like TCP's slow start), so a limit far below the provider's capacity is
      found in a few rounds rather than one step per round. The first 429 ends it.
    * Increase: once ``limit`` successes have completed while the window was at
      (or near) full load -- roughly once per "round" of the window -- the limit
      grows by ``increase``. Successes at light load do not count: if demand never
      reaches the limit, a success says nothing about whether a bigger limit is
      safe, and counting them would let the limit drift up to ``max`` unprobed.
    * Decrease: a rate-limit / overload signal multiplies the limit by
      ``decrease_factor``, at most once per ``cooldown`` seconds, because one
      overload typically produces a burst of 429s (every call that was already
      in flight) and should be answered once. Signals inside the cooldown still
      restart the increase count, so the limit does not creep up while the
      server is still pushing back. A ``retry_after`` hint additionally holds
      increases off until it has passed.
    * The limit stays within ``[min, max]`` and is resized in place (waiters are
      woken when it grows; holders are never interrupted when it shrinks).
    """

    def __init__(
        self,
        initial: int = 10,
        min: int = 1,  # noqa: A002 - public parameter name
        max: int = 200,  # noqa: A002 - public parameter name
        increase: int = 1,
        decrease_factor: float = 0.8,
        cooldown: float = 1.0,
        slow_start: bool = True,
    ) -> None:
        _check_int("Adaptive", "min", min, 1)
        _check_int("Adaptive", "max", max, 1)
        if min > max:
            raise ValueError(f"Adaptive: min={min!r} is greater than max={max!r}; min must be <= max")
        _check_int("Adaptive", "initial", initial, None)  # range checked just below
        if not (min <= initial <= max):
            raise ValueError(
                f"Adaptive: initial={initial!r} is not allowed; initial must be within [min, max] = [{min}, {max}]"
            )
        _check_int("Adaptive", "increase", increase, 1)
        if (
            isinstance(decrease_factor, bool)
            or not isinstance(decrease_factor, (int, float))
            or not (0.0 < decrease_factor < 1.0)
        ):
            raise ValueError(
                f"Adaptive: decrease_factor={decrease_factor!r} is not allowed; "
                "decrease_factor must be strictly between 0 and 1"
            )
        if (
            isinstance(cooldown, bool)
            or not isinstance(cooldown, (int, float))
            or not (0.0 <= cooldown < math.inf)
        ):
            raise ValueError(
                f"Adaptive: cooldown={cooldown!r} is not allowed; cooldown must be a finite number of seconds >= 0"
            )
        super().__init__(initial)
        self._min = min
        self._max = max
        self._increase = increase
        self._decrease_factor = float(decrease_factor)
        self._cooldown = float(cooldown)
        self._round_successes = 0  # successes at (near) full load since the last change
        self._last_decrease: float | None = None
        self._after_decrease = initial  # the limit right after the last multiplicative decrease
        self._hold_until = 0.0
        self._slow_start = bool(slow_start)  # until the first rate-limit signal

    @property
    def min(self) -> int:
        return self._min

    @property
    def max(self) -> int:
        return self._max

    def _clamp(self, value: int) -> int:
        return max(self._min, min(self._max, value))

    def resize(self, new_limit: int) -> None:
        """Resize in place; the value is clamped to ``[min, max]``."""
        super().resize(new_limit)
        with self._lock:
            self._round_successes = 0
            self._after_decrease = min(self._after_decrease, self._limit)

    def _near_full_locked(self) -> bool:
        # "Near" full because on_success may be reported just after the slot was
        # released (in_flight is then limit - 1 with nobody waiting) and because
        # real workloads rarely keep every last slot busy. Allow ~10% slack.
        demand = self._in_flight + self._n_waiting
        return demand >= self._limit - max(1, self._limit // 10)

    def on_success(self) -> None:
        grants: list[_Waiter] = []
        with self._lock:
            self._successes += 1
            if not self._near_full_locked() or time.monotonic() < self._hold_until:
                return
            self._round_successes += 1
            if self._round_successes < self._limit:
                return
            self._round_successes = 0
            step = self._limit if self._slow_start else self._increase
            new = self._clamp(self._limit + step)
            if new == self._limit:
                return
            old, self._limit = self._limit, new
            self._increases += 1
            grants = self._grant_locked()
        logger.debug("Adaptive concurrency: limit %d -> %d (%s)", old, new, "slow start" if step != self._increase else "additive increase")
        self._dispatch(grants)

    def on_rate_limited(self, retry_after: float | None = None) -> None:
        with self._lock:
            self._rate_limited += 1
            self._round_successes = 0
            self._slow_start = False
            now = time.monotonic()
            if retry_after is not None and retry_after > 0:
                self._hold_until = max(self._hold_until, now + min(float(retry_after), _MAX_HOLD_SECONDS))
            old = self._limit
            if self._last_decrease is not None and now - self._last_decrease < self._cooldown:
                # Inside the cooldown: no second multiplicative cut for the same
                # overload. But if the limit has grown again since that cut, the
                # last probe step overshot: take it back, so the limit does not
                # sit above capacity (collecting 429s) until the cooldown ends.
                if old <= self._after_decrease:
                    return
                new = max(self._after_decrease, old - self._increase)
                reason = "probe step undone"
            else:
                self._last_decrease = now
                new = self._clamp(int(old * self._decrease_factor))
                self._after_decrease = new
                reason = "multiplicative decrease"
            if new == old:
                return
            self._limit = new
            self._decreases += 1
            # Shrinking frees nothing, so there is nobody to wake.
        logger.debug("Adaptive concurrency: limit %d -> %d (rate limited: %s)", old, new, reason)

    def on_error(self, exc: BaseException) -> None:
        # A failure that is not an overload signal says nothing about capacity:
        # neither grow nor shrink. Report 429s/overloads via on_rate_limited.
        with self._lock:
            self._errors += 1


# ---------------------------------------------------------------------------
# Process-wide "current strategy" hook
# ---------------------------------------------------------------------------

current_strategy: contextvars.ContextVar[ConcurrencyStrategy | None] = contextvars.ContextVar(
    "scenario_current_strategy", default=None
)


@contextlib.contextmanager
def use_strategy(strategy: ConcurrencyStrategy | None) -> Iterator[ConcurrencyStrategy | None]:
    """Set :data:`current_strategy` for the enclosed code (restored on exit)."""
    token = current_strategy.set(strategy)
    try:
        yield strategy
    finally:
        current_strategy.reset(token)


def notify_rate_limited(retry_after: float | None = None) -> bool:
    """Report a 429/overload to the current strategy. Returns whether one was set."""
    strategy = current_strategy.get()
    if strategy is None:
        return False
    strategy.on_rate_limited(retry_after)
    return True


def notify_success() -> bool:
    """Report a success to the current strategy. Returns whether one was set."""
    strategy = current_strategy.get()
    if strategy is None:
        return False
    strategy.on_success()
    return True


def notify_error(exc: BaseException) -> bool:
    """Report a non-rate-limit failure to the current strategy. Returns whether one was set."""
    strategy = current_strategy.get()
    if strategy is None:
        return False
    strategy.on_error(exc)
    return True


# The model-call path announces its outcomes (scenario.events) instead of calling the functions
# above: every 429 an attempt met, and every answered call. The strategy current where the call was
# made hears them; replays from the cache asked no provider and say nothing about capacity.
def _hear_rate_limited(event: RateLimited) -> None:
    notify_rate_limited(event.retry_after)


def _hear_model_call(event: ModelCallFinished) -> None:
    if event.error is None and not event.cached:
        notify_success()


subscribe(RateLimited, _hear_rate_limited)
subscribe(ModelCallFinished, _hear_model_call)
