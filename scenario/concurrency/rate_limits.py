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

Past one process, a quota belongs to the whole batch, not to each worker: one
*coordinator* (the parent of ``processes=N`` workers, a Ray actor on the driver's
node) holds the real limiters, and every worker reserves from it through the
public seam below (:class:`PermitSource`, :func:`coordinate_rate_limits`).
Because a reservation is just "take the amount now, tell me how long to wait",
one round trip per model call is enough and the sleeping happens on the worker.
A worker that cannot reach its coordinator falls back to an even share of each
limit (warned once): slower than the quota allows, never over it. A restarted
coordinator starts with empty buckets, so a restart is not a second burst.
"""

from __future__ import annotations

import abc
import asyncio
import fnmatch
import logging
import math
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scenario import fork
from scenario.settings import on_configure

__all__ = [
    "CoordinatedLimiter",
    "PermitSource",
    "RateLimit",
    "RateLimiter",
    "RateLimits",
    "get_rate_limiter",
    "get_rate_limits",
    "coordinate_rate_limits",
    "set_rate_limits",
]

logger = logging.getLogger(__name__)


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

    def __init__(self, per_minute: float, now: float, drained: bool = False) -> None:
        self.capacity = float(per_minute)
        self.rate = float(per_minute) / 60.0  # units per second
        # Start full (allow the initial burst) unless this limiter replaces one that already
        # spent its burst (a restarted coordinator).
        self.level = 0.0 if drained else self.capacity
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


@fork.register
def reset_after_fork() -> None:
    """In a forked child: a fresh lock for every limiter and registry (see :mod:`scenario.fork`).

    Buckets keep their levels: what the parent spent is spent.
    """
    for obj in list(_instances):
        obj._lock = threading.Lock()


class RateLimiter:
    """Token-bucket limiter for one model (or model pattern); thread- and loop-safe."""

    def __init__(self, limit: RateLimit, *, clock: Any = time.monotonic, drained: bool = False) -> None:
        self._limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        self._requests = _Bucket(limit.requests_per_minute, now, drained) if limit.requests_per_minute else None
        self._tokens = _Bucket(limit.tokens_per_minute, now, drained) if limit.tokens_per_minute else None
        _instances.add(self)

    @property
    def limit(self) -> RateLimit:
        return self._limit

    def __repr__(self) -> str:
        return f"RateLimiter({self._limit!r})"

    def reserve(self, estimated_tokens: int = 0) -> float:
        """Take one request and ``estimated_tokens`` now; return the seconds the caller must
        wait before making the call (what a coordinator answers a worker)."""
        return self._reserve(max(0, int(estimated_tokens)))

    def refund(self, estimated_tokens: int = 0) -> None:
        """Give back a reservation whose call was never made."""
        self._refund(max(0, int(estimated_tokens)))

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

    def set(self, mapping: Mapping[str, RateLimit] | None, *, drained: bool = False) -> None:
        """Replace all entries (``None`` or ``{}`` clears them). ``drained`` starts every bucket
        empty (a restarted coordinator: the first minute's burst was already spent)."""
        limiters: dict[str, RateLimiter] = {}
        for key, limit in (mapping or {}).items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"RateLimits: model key {key!r} is not allowed; it must be a non-empty string")
            if not isinstance(limit, RateLimit):
                raise TypeError(f"RateLimits: value for {key!r} must be a RateLimit, got {type(limit).__name__}")
            limiters[key] = RateLimiter(limit, drained=drained)
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

    def limiter(self, key: str) -> RateLimiter | None:
        """The limiter registered under exactly ``key`` (a model name or pattern), or ``None``."""
        with self._lock:
            return self._limiters.get(key)

    def limits(self) -> dict[str, RateLimit]:
        """Every key's configured limit (to ship to workers or rebuild a coordinator)."""
        with self._lock:
            return {key: limiter.limit for key, limiter in self._limiters.items()}

    def coordinate(self, source: PermitSource, parts: int) -> None:
        """Make every limiter a client of ``source`` (see :func:`coordinate_rate_limits`)."""
        with self._lock:
            self._limiters = {
                key: CoordinatedLimiter(key, limiter.limit, source, parts)  # type: ignore[misc]
                for key, limiter in self._limiters.items()
            }
            self._resolved = {}

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


def _apply_configured_limits(_settings: Any, given: Mapping[str, Any]) -> None:
    # configure(rate_limits=...) names the process-wide limits; settings.py does not know this
    # module, so the value flows down through its hook.
    if "rate_limits" in given:
        set_rate_limits(given["rate_limits"])


on_configure(_apply_configured_limits)


def get_rate_limiter(model: str) -> RateLimiter | None:
    """The limiter for ``model`` from the process-wide registry, or ``None``."""
    return _registry.get(model)


# ---------------------------------------------------------------------------------------------
# One quota for a batch spread over processes or machines


class PermitSource(abc.ABC):
    """Where a worker's limiters reserve their permits: the batch's coordinator.

    ``key`` is the registry key the model resolved to (a model name or pattern), the same on the
    coordinator and every worker because the workers were given the coordinator's limits.
    """

    @abc.abstractmethod
    async def reserve(self, key: str, tokens: int) -> float:
        """Take one request and ``tokens`` from ``key``'s quota; return the seconds to wait."""

    @abc.abstractmethod
    def refund(self, key: str, tokens: int) -> None:
        """Give back a reservation whose call was not made (fire and forget)."""

    @abc.abstractmethod
    def record_usage(self, key: str, actual_tokens: int, estimated_tokens: int) -> None:
        """Correct ``key``'s token bucket by what the call really cost (fire and forget)."""


#: Seconds a worker waits for its coordinator's answer before using its even share instead.
COORDINATOR_TIMEOUT = 5.0


class CoordinatedLimiter:
    """A worker's limiter for one key: reserves from the coordinator, sleeps locally.

    Same interface as :class:`RateLimiter` where the model call uses it (``acquire``,
    ``record_usage``, ``limit``). If the coordinator does not answer within
    :data:`COORDINATOR_TIMEOUT` (or fails), this limiter switches for good to a local limiter
    holding ``1/parts`` of the limit, and warns once: slower than the quota allows, never over it.
    """

    def __init__(self, key: str, limit: RateLimit, source: PermitSource, parts: int,
                 *, timeout: float = COORDINATOR_TIMEOUT) -> None:
        self.key = key
        self._limit = limit
        self._source = source
        self._parts = max(1, parts)
        self._timeout = timeout
        self._fallback: RateLimiter | None = None
        self._fallback_lock = threading.Lock()

    @property
    def limit(self) -> RateLimit:
        return self._limit

    @property
    def fallen_back(self) -> bool:
        """True once the coordinator was unreachable and the even share is in use."""
        return self._fallback is not None

    def __repr__(self) -> str:
        return f"CoordinatedLimiter({self.key!r}, {self._limit!r}, fallen_back={self.fallen_back})"

    def _share(self, why: str) -> RateLimiter:
        with self._fallback_lock:
            if self._fallback is None:
                limit = self._limit
                share = RateLimit(
                    requests_per_minute=limit.requests_per_minute / self._parts if limit.requests_per_minute else None,
                    tokens_per_minute=limit.tokens_per_minute / self._parts if limit.tokens_per_minute else None,
                )
                logger.warning(
                    "rate limit %r: the batch's rate-limit coordinator is unreachable (%s); this worker now keeps to "
                    "1/%d of the limit (%s) on its own.", self.key, why, self._parts, share,
                )
                # Drained: the coordinator may already have let this minute's burst through.
                self._fallback = RateLimiter(share, drained=True)
            return self._fallback

    async def acquire(self, estimated_tokens: int = 0) -> float:
        if estimated_tokens < 0:
            raise ValueError(f"RateLimiter.acquire: estimated_tokens={estimated_tokens!r} must be >= 0")
        if self._fallback is not None:
            return await self._fallback.acquire(estimated_tokens)
        try:
            wait = await asyncio.wait_for(self._source.reserve(self.key, estimated_tokens), self._timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # timeout, coordinator gone, transport broken
            why = f"no answer within {self._timeout:g}s" if isinstance(exc, asyncio.TimeoutError) else (
                f"{type(exc).__name__}: {exc}")
            return await self._share(why).acquire(estimated_tokens)
        if wait <= 0:
            return 0.0
        try:
            await asyncio.sleep(wait)
        except BaseException:
            self._safe(self._source.refund, self.key, estimated_tokens)
            raise
        return wait

    def record_usage(self, actual_tokens: int, estimated_tokens: int) -> None:
        if self._fallback is not None:
            self._fallback.record_usage(actual_tokens, estimated_tokens)
        elif self._limit.tokens_per_minute and actual_tokens != estimated_tokens:
            self._safe(self._source.record_usage, self.key, actual_tokens, estimated_tokens)

    @staticmethod
    def _safe(call: Any, *args: Any) -> None:
        try:
            call(*args)
        except Exception:  # the coordinator is gone: nothing to give back to
            pass


def coordinate_rate_limits(source: PermitSource, parts: int) -> None:
    """Route this process's rate limits through a batch coordinator (run in a worker).

    Every configured limit keeps its key; permits come from ``source``. ``parts`` is the number
    of workers, used only for the even-share fallback when the coordinator is unreachable.
    """
    _registry.coordinate(source, parts)
