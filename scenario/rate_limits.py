"""Client-side rate limits (requests and tokens per minute), per model.

Provider quotas are expressed per minute; hitting them produces 429s that cost a
round trip, a backoff and (for ``Adaptive``) a halved concurrency. Pacing calls
on our side avoids most of them.

Each limiter is a pair of token buckets whose capacity is the per-minute amount
and which refill continuously (amount / 60 per second): a fresh limiter lets a
burst of up to one minute's quota through, then spaces calls at the refill rate.

Waiting uses *reservations*: ``acquire`` takes what it needs immediately, even
if that drives a bucket negative, and then sleeps exactly until the debt is
repaid. That gives FIFO order without a polling loop and without a queue, and
it works from any number of threads and event loops at once, because the only
shared state is two numbers behind a ``threading.Lock``; every caller sleeps
(``asyncio.sleep``) on its own loop. A cancelled ``acquire`` refunds its
reservation.
"""

from __future__ import annotations

import asyncio
import fnmatch
import math
import os
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "RateLimit",
    "RateLimiter",
    "RateLimits",
    "get_rate_limiter",
    "get_rate_limits",
    "set_rate_limits",
]


@dataclass(frozen=True)
class RateLimit:
    """Requests and/or tokens per minute; ``None`` means "not limited"."""

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "tokens_per_minute"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
                raise ValueError(f"RateLimit: {name}={value!r} is not allowed; it must be a finite number > 0")


class _Bucket:
    """Continuously refilling bucket. Not thread-safe by itself (RateLimiter locks)."""

    __slots__ = ("capacity", "rate", "level", "stamp")

    def __init__(self, per_minute: float, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = float(per_minute) / 60.0  # units per second
        self.level = self.capacity  # start full: allow the initial burst
        self.stamp = now

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait_for_non_negative(self) -> float:
        return 0.0 if self.level >= 0 else -self.level / self.rate


# Every live limiter and registry: a forked child gets fresh locks, since one
# may have been held by a parent thread that does not exist in the child.
_instances: weakref.WeakSet[Any] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for obj in list(_instances):
        obj._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class RateLimiter:
    """Token-bucket limiter for one model (or model pattern); thread- and loop-safe."""

    def __init__(self, limit: RateLimit, *, clock: Any = time.monotonic) -> None:
        self._limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        self._requests = _Bucket(limit.requests_per_minute, now) if limit.requests_per_minute else None
        self._tokens = _Bucket(limit.tokens_per_minute, now) if limit.tokens_per_minute else None
        _instances.add(self)

    @property
    def limit(self) -> RateLimit:
        return self._limit

    def __repr__(self) -> str:
        return f"RateLimiter({self._limit!r})"

    def _reserve(self, estimated_tokens: int) -> float:
        with self._lock:
            now = self._clock()
            wait = 0.0
            if self._requests is not None:
                self._requests.refill(now)
                # Wait until a whole request is available, then spend it: the
                # reservation makes the level go from (>= 1 after wait) to >= 0.
                self._requests.level -= 1.0
                wait = max(wait, self._requests.wait_for_non_negative())
            if self._tokens is not None and estimated_tokens > 0:
                self._tokens.refill(now)
                self._tokens.level -= estimated_tokens
                wait = max(wait, self._tokens.wait_for_non_negative())
            return wait

    def _refund(self, estimated_tokens: int) -> None:
        with self._lock:
            now = self._clock()
            if self._requests is not None:
                self._requests.refill(now)
                self._requests.level = min(self._requests.capacity, self._requests.level + 1.0)
            if self._tokens is not None and estimated_tokens > 0:
                self._tokens.refill(now)
                self._tokens.level = min(self._tokens.capacity, self._tokens.level + estimated_tokens)

    async def acquire(self, estimated_tokens: int = 0) -> float:
        """Wait until one request and ``estimated_tokens`` tokens are available and
        take them. Returns the seconds waited (0.0 when no wait was needed)."""
        if estimated_tokens < 0:
            raise ValueError(f"RateLimiter.acquire: estimated_tokens={estimated_tokens!r} must be >= 0")
        wait = self._reserve(estimated_tokens)
        if wait <= 0:
            return 0.0
        try:
            await asyncio.sleep(wait)
        except BaseException:
            # Not going to make the call: give the reservation back so later
            # callers are not held back by a request that never happened.
            self._refund(estimated_tokens)
            raise
        return wait

    def record_usage(self, actual_tokens: int, estimated_tokens: int) -> None:
        """Correct the token bucket once the response says what the call really cost.

        Using more than estimated puts the bucket into debt (later callers wait
        longer); using less gives the difference back (up to capacity).
        """
        if self._tokens is None:
            return
        delta = float(actual_tokens) - float(estimated_tokens)
        if delta == 0:
            return
        with self._lock:
            self._tokens.refill(self._clock())
            self._tokens.level = min(self._tokens.capacity, self._tokens.level - delta)

    def snapshot(self) -> dict[str, float | None]:
        """Current bucket levels (after refill), for logs and tests."""
        with self._lock:
            now = self._clock()
            out: dict[str, float | None] = {"requests_available": None, "tokens_available": None}
            if self._requests is not None:
                self._requests.refill(now)
                out["requests_available"] = self._requests.level
            if self._tokens is not None:
                self._tokens.refill(now)
                out["tokens_available"] = self._tokens.level
            return out


class RateLimits:
    """Maps model names to limiters.

    Keys are exact model names (``"openai/gpt-4o-mini"``) or fnmatch patterns
    (``"openai/*"``). Lookup prefers an exact key; otherwise the longest matching
    pattern wins (the most specific one), ties going to the one listed first.
    All models matching the same key share that key's limiter (and buckets), so
    a pattern expresses a quota shared by those models; list models separately
    to give each its own quota.
    """

    def __init__(self, mapping: Mapping[str, RateLimit] | None = None) -> None:
        self._lock = threading.Lock()
        self._limiters: dict[str, RateLimiter] = {}
        self._resolved: dict[str, RateLimiter | None] = {}
        _instances.add(self)
        if mapping:
            self.set(mapping)

    def set(self, mapping: Mapping[str, RateLimit] | None) -> None:
        """Replace all entries (``None`` or ``{}`` clears them)."""
        limiters: dict[str, RateLimiter] = {}
        for key, limit in (mapping or {}).items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"RateLimits: model key {key!r} is not allowed; it must be a non-empty string")
            if not isinstance(limit, RateLimit):
                raise TypeError(f"RateLimits: value for {key!r} must be a RateLimit, got {type(limit).__name__}")
            limiters[key] = RateLimiter(limit)
        with self._lock:
            self._limiters = limiters
            self._resolved = {}

    def get(self, model: str) -> RateLimiter | None:
        with self._lock:
            try:
                return self._resolved[model]
            except KeyError:
                pass
            limiter = self._limiters.get(model)
            if limiter is None:
                best: tuple[int, int] | None = None
                for index, (key, candidate) in enumerate(self._limiters.items()):
                    if fnmatch.fnmatchcase(model, key):
                        rank = (-len(key), index)
                        if best is None or rank < best:
                            best, limiter = rank, candidate
            self._resolved[model] = limiter
            return limiter

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._limiters)

    def __len__(self) -> int:
        with self._lock:
            return len(self._limiters)


_registry = RateLimits()


def get_rate_limits() -> RateLimits:
    """The process-wide registry."""
    return _registry


def set_rate_limits(mapping: Mapping[str, RateLimit] | None) -> None:
    """Replace the process-wide rate limits (``None`` clears them)."""
    _registry.set(mapping)


def get_rate_limiter(model: str) -> RateLimiter | None:
    """The limiter for ``model`` from the process-wide registry, or ``None``."""
    return _registry.get(model)
