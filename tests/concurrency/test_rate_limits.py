"""Token-bucket rate limits: burst then pacing, TPM, usage correction, the
process-wide registry, and sharing one limiter across threads and loops."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from scenario.concurrency.rate_limits import (
    RateLimit,
    RateLimiter,
    RateLimits,
    get_rate_limiter,
    get_rate_limits,
    set_rate_limits,
)


@pytest.fixture(autouse=True)
def _clear_registry():
    set_rate_limits(None)
    yield
    set_rate_limits(None)


def test_rate_limit_validation():
    assert RateLimit(requests_per_minute=60).tokens_per_minute is None
    with pytest.raises(ValueError, match="requests_per_minute=0"):
        RateLimit(requests_per_minute=0)
    with pytest.raises(ValueError, match="tokens_per_minute=-5"):
        RateLimit(tokens_per_minute=-5)
    with pytest.raises(ValueError, match="requests_per_minute='10'"):
        RateLimit(requests_per_minute="10")  # type: ignore[arg-type]
    with pytest.raises(Exception):
        RateLimit(requests_per_minute=1).requests_per_minute = 2  # frozen


@pytest.mark.asyncio
async def test_rpm_allows_a_burst_then_spaces_calls():
    limiter = RateLimiter(RateLimit(requests_per_minute=600))  # 10/s -> one every 0.1 s
    start = time.perf_counter()
    for _ in range(600):  # a full minute's quota goes through at once
        await limiter.acquire()
    assert time.perf_counter() - start < 0.5
    stamps = []
    for _ in range(3):
        await limiter.acquire()
        stamps.append(time.perf_counter() - start)
    # Then one per 0.1 s: the k-th call past the burst not before k * 0.1 s
    # (measured cumulatively, so a late wake-up does not fail the check).
    for k, stamp in enumerate(stamps, start=1):
        assert stamp >= k * 0.1 - 0.005, stamps
    assert stamps[-1] < 0.8


@pytest.mark.asyncio
async def test_concurrent_waiters_are_spaced_not_bunched():
    limiter = RateLimiter(RateLimit(requests_per_minute=1200))  # 20/s
    for _ in range(1200):
        await limiter.acquire()
    level = limiter.snapshot()["requests_available"]  # ~0 (whatever refilled while draining)
    start = time.perf_counter()
    done: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        done.append(time.perf_counter() - start)

    await asyncio.gather(*(one() for _ in range(4)))
    done.sort()
    for k, stamp in enumerate(done, start=1):  # 0.05 s apart, not released together
        assert stamp >= (k - level) * 0.05 - 0.005, (k, level, done)
    assert done[-1] < 0.5


@pytest.mark.asyncio
async def test_tpm_enforced_with_estimates():
    limiter = RateLimiter(RateLimit(tokens_per_minute=6000))  # 100 tokens/s
    start = time.perf_counter()
    assert await limiter.acquire(estimated_tokens=6000) == 0.0  # whole bucket in one go
    waited = await limiter.acquire(estimated_tokens=20)  # needs 0.2 s of refill
    elapsed = time.perf_counter() - start
    assert 0.15 <= waited <= 0.25
    assert 0.15 <= elapsed <= 0.5


@pytest.mark.asyncio
async def test_record_usage_corrects_the_token_bucket():
    limiter = RateLimiter(RateLimit(tokens_per_minute=6000))
    await limiter.acquire(estimated_tokens=6000)
    limiter.record_usage(actual_tokens=1000, estimated_tokens=6000)  # used far less: refund
    assert limiter.snapshot()["tokens_available"] >= 4999
    assert await limiter.acquire(estimated_tokens=4000) == 0.0
    limiter.record_usage(actual_tokens=2020, estimated_tokens=1000)  # used more: ~20 tokens of debt
    assert limiter.snapshot()["tokens_available"] < 0
    start = time.perf_counter()
    await limiter.acquire(estimated_tokens=1)  # 100 tokens/s: ~0.2 s to repay
    assert 0.1 < time.perf_counter() - start < 0.5


@pytest.mark.asyncio
async def test_rpm_and_tpm_together_wait_for_the_slower():
    limiter = RateLimiter(RateLimit(requests_per_minute=6000, tokens_per_minute=600))  # 100 req/s, 10 tok/s
    await limiter.acquire(estimated_tokens=600)
    waited = await limiter.acquire(estimated_tokens=2)
    assert 0.15 <= waited <= 0.25  # tokens, not requests, are the constraint


@pytest.mark.asyncio
async def test_cancelled_acquire_refunds_its_reservation():
    limiter = RateLimiter(RateLimit(requests_per_minute=60))  # 1/s
    for _ in range(60):
        await limiter.acquire()
    task = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The cancelled reservation is given back: the next caller waits ~1 s, not ~2 s.
    level = limiter.snapshot()["requests_available"]
    assert -0.1 < level < 0.1


@pytest.mark.asyncio
async def test_one_limiter_shared_by_two_threads_each_with_its_own_loop():
    limiter = RateLimiter(RateLimit(requests_per_minute=1200))  # 20/s
    for _ in range(1200):
        await limiter.acquire()  # drain the burst so pacing is visible
    stamps: list[float] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    level = limiter.snapshot()["requests_available"]  # ~0 (whatever refilled while draining)
    start = time.perf_counter()

    async def calls(n: int) -> None:
        for _ in range(n):
            await limiter.acquire()
            with lock:
                stamps.append(time.perf_counter() - start)

    def thread_main() -> None:
        try:
            asyncio.run(calls(3))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=thread_main) for _ in range(2)]
    for t in threads:
        t.start()
    await asyncio.to_thread(lambda: [t.join(10) for t in threads])
    assert not errors
    # Both threads drew on one budget: the k-th call (1-based) cannot happen
    # before (k - level) * 0.05 s, whichever thread made it.
    stamps.sort()
    assert len(stamps) == 6
    for k, stamp in enumerate(stamps, start=1):
        assert stamp >= (k - level) * 0.05 - 0.005, (k, level, stamps)


def test_registry_exact_and_pattern_lookup():
    limits = RateLimits(
        {
            "openai/*": RateLimit(requests_per_minute=100),
            "openai/gpt-4o*": RateLimit(requests_per_minute=50),
            "openai/gpt-4o-mini": RateLimit(requests_per_minute=10),
        }
    )
    assert limits.get("openai/gpt-4o-mini").limit.requests_per_minute == 10  # exact
    assert limits.get("openai/gpt-4o-2024").limit.requests_per_minute == 50  # most specific pattern
    assert limits.get("openai/o3").limit.requests_per_minute == 100
    assert limits.get("anthropic/claude") is None
    # models matching one pattern share its limiter
    assert limits.get("openai/o3") is limits.get("openai/o1")
    assert len(limits) == 3


def test_process_wide_registry():
    assert get_rate_limiter("openai/gpt-4o") is None
    set_rate_limits({"openai/*": RateLimit(requests_per_minute=5)})
    limiter = get_rate_limiter("openai/gpt-4o")
    assert isinstance(limiter, RateLimiter)
    assert get_rate_limiter("openai/gpt-4o") is limiter  # stable
    assert get_rate_limits().keys() == ["openai/*"]
    set_rate_limits(None)
    assert get_rate_limiter("openai/gpt-4o") is None
    with pytest.raises(TypeError):
        set_rate_limits({"x": 5})  # type: ignore[dict-item]


def test_registry_is_thread_safe():
    set_rate_limits({"m-*": RateLimit(requests_per_minute=5)})
    seen: list[object] = []
    lock = threading.Lock()

    def lookups() -> None:
        for i in range(500):
            limiter = get_rate_limiter(f"m-{i % 7}")
            with lock:
                seen.append(limiter)

    threads = [threading.Thread(target=lookups) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(x) for x in seen}) == 1  # every model maps to the one shared limiter
