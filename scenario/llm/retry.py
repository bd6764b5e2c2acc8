"""Retrying model calls: how long to wait, how often (which errors are transient is
:mod:`scenario.llm.classify`'s call; its names are re-exported here).

Classification is deliberately conservative: only failures that can succeed on
a second try are retried (rate limits, timeouts, connection problems, server
errors). Client errors (400/401/403/404/422, context window exceeded, content
policy, a missing API key that litellm reports as a 500, ...) never are: the
same request would fail the same way and a retry only burns quota and time.
``asyncio.CancelledError`` is never retried either, cancellation must propagate
at once. Timeouts are retried fewer times than other transient errors
(``max_timeout_attempts``): every timed-out attempt costs the whole per-call
timeout, and a silent endpoint should fail in about 90 s, not minutes
(:mod:`scenario.llm.classify` has the arithmetic).

While a call sleeps before its next attempt it is listed on :data:`retry_board`,
which the live progress display reads ("3 calls retrying, next in 4 s").

litellm is *not* imported here: ``import scenario`` must stay fast and litellm
takes seconds to import (:mod:`scenario.llm.classify` recognises its exceptions
by duck typing). tenacity is imported on the first failure only.

Rate-limited attempts are announced as :class:`scenario.events.RateLimited`
(with ``report_rate_limits=True``); the concurrency strategies subscribe to it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from scenario import fork
from scenario.events import RateLimited, publish
from scenario.llm.classify import (
    RETRYABLE_KINDS,
    ErrorKind,
    classify_error,
    is_retryable,
    retry_after_seconds,
)

__all__ = [
    "ErrorKind",
    "RetryEvent",
    "RetryPolicy",
    "retry_board",
    "call_with_retries",
    "classify_error",
    "is_retryable",
    "retry_after_seconds",
    "RETRYABLE_KINDS",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class RetryPolicy:
    """How to retry a transient failure.

    Attempt ``n`` (1-based) that fails waits ``min(max_backoff, initial_backoff *
    multiplier ** (n - 1))`` scaled down by a random factor in ``[1 - jitter, 1]``
    (jitter de-synchronises many scenarios hitting the same limit). When the
    error carries a Retry-After and ``respect_retry_after`` is set, the wait is
    ``max(lower bound of the backoff, retry_after)``, capped at ``max_retry_after``.

    ``sleep`` replaces ``asyncio.sleep`` (tests use it to observe waits without
    spending them).
    """

    max_attempts: int = 4
    #: Attempts when they time out (each costs the whole per-call timeout): with the default
    #: 45 s timeout, a call to a silent endpoint fails after ~90 s instead of four minutes.
    max_timeout_attempts: int = 2
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.5
    respect_retry_after: bool = True
    max_retry_after: float = 60.0
    sleep: Callable[[float], Awaitable[None]] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"RetryPolicy: max_attempts={self.max_attempts!r} is not allowed; it must be an int >= 1")
        if (isinstance(self.max_timeout_attempts, bool) or not isinstance(self.max_timeout_attempts, int)
                or self.max_timeout_attempts < 1):
            raise ValueError(
                f"RetryPolicy: max_timeout_attempts={self.max_timeout_attempts!r} is not allowed; it must be an int >= 1"
            )
        for name in ("initial_backoff", "max_backoff", "max_retry_after"):
            value = getattr(self, name)
            if not _is_number(value) or not (0 <= value < float("inf")):
                raise ValueError(f"RetryPolicy: {name}={value!r} is not allowed; it must be a finite number >= 0")
        if not _is_number(self.multiplier) or not (1 <= self.multiplier < float("inf")):
            raise ValueError(f"RetryPolicy: multiplier={self.multiplier!r} is not allowed; it must be >= 1")
        if not _is_number(self.jitter) or not (0 <= self.jitter <= 1):
            raise ValueError(f"RetryPolicy: jitter={self.jitter!r} is not allowed; it must be within [0, 1]")
        if self.max_backoff < self.initial_backoff:
            raise ValueError(
                f"RetryPolicy: max_backoff={self.max_backoff!r} is less than initial_backoff="
                f"{self.initial_backoff!r}; max_backoff must be >= initial_backoff"
            )

    def backoff_bounds(self, attempt: int) -> tuple[float, float]:
        """(lower, upper) wait after failed attempt number ``attempt`` (1-based), before Retry-After."""
        upper = min(self.max_backoff, self.initial_backoff * self.multiplier ** max(0, attempt - 1))
        return upper * (1.0 - self.jitter), upper

    def compute_sleep(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait after failed attempt ``attempt`` given an optional server Retry-After."""
        lower, upper = self.backoff_bounds(attempt)
        wait = lower + (upper - lower) * random.random()
        if retry_after is not None and self.respect_retry_after:
            # The server knows when capacity comes back; waiting less just earns
            # another 429. The cap protects against absurd header values.
            wait = min(max(lower, retry_after), self.max_retry_after)
        return wait


@dataclass(frozen=True)
class RetryEvent:
    """Passed to ``on_retry`` before each sleep."""

    attempt: int  # the attempt that just failed (1-based)
    exception: BaseException
    classification: ErrorKind
    sleep: float  # seconds about to be slept before attempt + 1
    retry_after: float | None = None  # server hint, if any


# ---------------------------------------------------------------------------
# Who is waiting to retry (for the live display)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryWaits:
    """What :meth:`RetryBoard.snapshot` reports."""

    retrying: int = 0  # calls (or runs) sleeping before their next attempt
    next_in: float | None = None  # seconds until the first of them tries again
    rate_limited: int = 0  # of those, how many wait because of a 429

    def describe(self) -> str:
        """``3 calls retrying, next in 4 s; 1 rate-limited`` (empty when nothing waits)."""
        if not self.retrying:
            return ""
        text = f"{self.retrying} call{'s' if self.retrying != 1 else ''} retrying"
        if self.next_in is not None:
            text += f", next in {max(0.0, self.next_in):.0f} s"
        if self.rate_limited:
            text += f"; {self.rate_limited} rate-limited"
        return text


class RetryBoard:
    """The process's calls that are sleeping before a retry, with when they wake and why.

    Written by :func:`call_with_retries` (and the batch's whole-run retries) around each sleep;
    read by the progress display. A plain dict under a lock: entries live for one sleep.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[float, str]] = {}
        self._next_token = 0

    def add(self, seconds: float, kind: str) -> int:
        with self._lock:
            self._next_token += 1
            self._waiting[self._next_token] = (time.monotonic() + seconds, kind)
            return self._next_token

    def remove(self, token: int) -> None:
        with self._lock:
            self._waiting.pop(token, None)

    def reset_after_fork(self) -> None:
        """In a forked child: a fresh lock and nothing waiting (the parent's sleepers are not
        here; see :mod:`scenario.fork`)."""
        self._lock = threading.Lock()
        self._waiting.clear()

    async def sleep(self, seconds: float, kind: str, sleep: Callable[[float], Awaitable[None]] | None = None) -> None:
        """Sleep ``seconds`` (with ``sleep``, default asyncio.sleep) while listed as waiting."""
        token = self.add(seconds, kind)
        try:
            await (sleep or asyncio.sleep)(seconds)
        finally:
            self.remove(token)

    def snapshot(self) -> RetryWaits:
        now = time.monotonic()
        with self._lock:
            entries = list(self._waiting.values())
        if not entries:
            return RetryWaits()
        return RetryWaits(
            retrying=len(entries),
            next_in=min(wake for wake, _ in entries) - now,
            rate_limited=sum(1 for _, kind in entries if kind == "rate_limit"),
        )


#: The one board of this process (forked batch workers each have their own).
retry_board = RetryBoard()
fork.register(retry_board.reset_after_fork)


# ---------------------------------------------------------------------------
# The retry loop
# ---------------------------------------------------------------------------


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[RetryEvent], None] | None = None,
    report_rate_limits: bool = False,
) -> tuple[T, int]:
    """Await ``fn()`` until it succeeds, a non-retryable error occurs or
    ``policy.max_attempts`` is reached. Returns ``(value, attempts)``.

    On final failure the *original* exception is re-raised (not
    ``tenacity.RetryError``) with ``scenario_attempts`` set to the number of
    attempts made.

    With ``report_rate_limits=True`` every rate-limited attempt is also announced
    as :class:`scenario.events.RateLimited`, which the concurrency strategies
    hear (``scenario.concurrency.strategies.notify_rate_limited``). It is off by
    default because callers that already report from ``on_retry`` would
    otherwise count every 429 twice.
    """
    # Fast path: nearly every call succeeds at once, and setting up tenacity costs more CPU
    # than the rest of our per-call bookkeeping, so only a failure pays for it. That failure
    # is replayed to tenacity as attempt 1, so waits, events and counts are unchanged.
    first_failure: BaseException | None = None
    try:
        return await fn(), 1
    except Exception as exc:
        if report_rate_limits and classify_error(exc) == "rate_limit":
            publish(RateLimited(retry_after_seconds(exc)))
        if policy.max_attempts <= 1 or not is_retryable(exc):
            try:
                setattr(exc, "scenario_attempts", 1)
            except Exception:
                pass
            raise
        first_failure = exc

    # Imported here, not at module import: keeps `import scenario` light.
    from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        retry_after = retry_after_seconds(exc) if exc is not None else None
        return policy.compute_sleep(state.attempt_number, retry_after)

    timeouts = 0  # attempts that timed out so far (capped by policy.max_timeout_attempts)
    sleeping_kind = "other"

    def should_retry(exc: BaseException) -> bool:
        if not is_retryable(exc):
            return False
        return classify_error(exc) != "timeout" or timeouts < policy.max_timeout_attempts

    async def board_sleep(seconds: float) -> None:
        await retry_board.sleep(seconds, sleeping_kind, policy.sleep)

    def before_sleep(state: RetryCallState) -> None:
        nonlocal sleeping_kind
        if state.outcome is None:
            return
        exc = state.outcome.exception()
        if exc is None:
            return
        sleeping_kind = classify_error(exc)
        if on_retry is None:
            return
        event = RetryEvent(
            attempt=state.attempt_number,
            exception=exc,
            classification=classify_error(exc),
            sleep=state.next_action.sleep if state.next_action is not None else 0.0,
            retry_after=retry_after_seconds(exc),
        )
        try:
            on_retry(event)
        except Exception:  # an observer must not change the outcome of the call
            logger.exception("on_retry callback failed")

    retrying = AsyncRetrying(
        sleep=board_sleep,
        stop=stop_after_attempt(policy.max_attempts),
        wait=wait,
        retry=retry_if_exception(should_retry),
        before_sleep=before_sleep,
        reraise=True,
    )

    attempts = 1

    async def attempt_once() -> T:
        nonlocal attempts, first_failure, timeouts
        if first_failure is not None:
            failed, first_failure = first_failure, None
            if classify_error(failed) == "timeout":
                timeouts += 1
            raise failed
        attempts += 1
        try:
            return await fn()
        except Exception as exc:
            kind = classify_error(exc)
            if kind == "timeout":
                timeouts += 1
            if report_rate_limits and kind == "rate_limit":
                publish(RateLimited(retry_after_seconds(exc)))
            raise

    try:
        value: T = await retrying(attempt_once)
    except BaseException as exc:
        try:
            setattr(exc, "scenario_attempts", attempts)
        except Exception:  # e.g. exceptions with __slots__ or read-only attributes
            pass
        raise
    return value, attempts
