"""Concurrency strategies: gate semantics, cross-thread/loop safety, AIMD behaviour,
the current-strategy hook, and the thread-executor resource guard."""

from __future__ import annotations

import asyncio
import contextvars
import os
import random
import threading
import time

import pytest

from scenario.concurrency import resources
from scenario.concurrency.strategies import (
    Adaptive,
    ConcurrencyStrategy,
    SlidingWindow,
    current_strategy,
    notify_error,
    notify_rate_limited,
    notify_success,
    use_strategy,
)

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


async def _settle(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


class _Peak:
    """Thread-safe in-flight counter recording its maximum."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.current = 0
        self.peak = 0
        self.violations: list[str] = []

    def enter(self, check_limit: ConcurrencyStrategy | None = None) -> None:
        with self.lock:
            self.current += 1
            self.peak = max(self.peak, self.current)
            if check_limit is not None and self.current > check_limit.limit:
                self.violations.append(f"{self.current} in flight > limit {check_limit.limit}")

    def exit(self) -> None:
        with self.lock:
            self.current -= 1


def _run_in_threads(n_threads: int, coro_factory) -> tuple[list[threading.Thread], list[BaseException]]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro_factory())
        except BaseException as exc:  # surfaced by the test
            errors.append(exc)

    threads = [threading.Thread(target=target, daemon=True) for _ in range(n_threads)]
    for t in threads:
        t.start()
    return threads, errors


async def _join(threads: list[threading.Thread], timeout: float = 10.0) -> None:
    def join_all() -> None:
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    await asyncio.to_thread(join_all)
    assert not any(t.is_alive() for t in threads), "worker threads did not finish (deadlock?)"


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "needle"),
    [
        (lambda: SlidingWindow(0), "max_concurrency=0"),
        (lambda: SlidingWindow(-3), "max_concurrency=-3"),
        (lambda: Adaptive(min=0), "min=0"),
        (lambda: Adaptive(initial=5, min=10, max=5), "min=10"),
        (lambda: Adaptive(initial=0), "initial=0"),
        (lambda: Adaptive(initial=300, max=200), "initial=300"),
        (lambda: Adaptive(initial=1, min=2, max=5), "initial=1"),
        (lambda: Adaptive(decrease_factor=0), "decrease_factor=0"),
        (lambda: Adaptive(decrease_factor=1.0), "decrease_factor=1.0"),
        (lambda: Adaptive(decrease_factor=1.5), "decrease_factor=1.5"),
        (lambda: Adaptive(increase=0), "increase=0"),
        (lambda: Adaptive(cooldown=-1), "cooldown=-1"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_the_argument(factory, needle):
    with pytest.raises(ValueError) as info:
        factory()
    message = str(info.value)
    assert needle in message
    # says what is allowed
    assert any(word in message for word in (">=", "between", "within", "<="))


def test_wrong_types_are_value_errors_too():
    with pytest.raises(ValueError, match="max_concurrency=2.5"):
        SlidingWindow(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="initial=True"):
        Adaptive(initial=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="decrease_factor='half'"):
        Adaptive(decrease_factor="half")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="decrease_factor=nan"):
        Adaptive(decrease_factor=float("nan"))


def test_resize_validation():
    s = SlidingWindow(3)
    with pytest.raises(ValueError, match="new_limit=0"):
        s.resize(0)
    a = Adaptive(initial=5, min=2, max=8)
    a.resize(100)
    assert a.limit == 8  # clamped to max
    a.resize(1)
    assert a.limit == 2  # clamped to min


# ---------------------------------------------------------------------------
# gate semantics on one loop
# ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_sliding_window_never_exceeds_limit_and_fills_it():
    s = SlidingWindow(4)
    peak = _Peak()

    async def job() -> None:
        async with s.slot():
            peak.enter(s)
            await asyncio.sleep(random.random() * 0.003)
            peak.exit()

    await asyncio.gather(*(job() for _ in range(60)))
    assert peak.peak == 4
    assert not peak.violations
    assert (s.in_flight, s.waiting) == (0, 0)


@pytest.mark.asyncio
async def test_next_starts_the_moment_one_finishes():
    s = SlidingWindow(1)
    await s.acquire()
    started = asyncio.Event()

    async def waiter() -> None:
        async with s.slot():
            started.set()

    task = asyncio.create_task(waiter())
    await _settle()
    assert s.waiting == 1 and not started.is_set()
    s.release()
    await asyncio.wait_for(started.wait(), 1)
    await task
    assert s.in_flight == 0


@pytest.mark.asyncio
async def test_fifo_order_and_no_barging():
    s = SlidingWindow(1)
    await s.acquire()
    order: list[int] = []

    async def job(i: int) -> None:
        async with s.slot():
            order.append(i)
            await asyncio.sleep(0)

    tasks = []
    for i in range(10):
        tasks.append(asyncio.create_task(job(i)))
        await _settle(2)  # enqueue in a known order
    assert s.waiting == 10
    s.release()
    # A newcomer arriving now must queue behind the existing waiters.
    tasks.append(asyncio.create_task(job(99)))
    await asyncio.gather(*tasks)
    assert order == list(range(10)) + [99]


@pytest.mark.asyncio
async def test_release_without_acquire_raises():
    s = SlidingWindow(2)
    with pytest.raises(RuntimeError, match="release"):
        s.release()


@pytest.mark.asyncio
async def test_slot_releases_on_exception():
    s = SlidingWindow(1)
    with pytest.raises(ZeroDivisionError):
        async with s.slot():
            1 / 0  # noqa: B018
    assert s.in_flight == 0


@pytest.mark.asyncio
async def test_cancelled_waiter_is_removed():
    s = SlidingWindow(1)
    await s.acquire()
    tasks = [asyncio.create_task(s.acquire()) for _ in range(3)]
    await _settle()
    assert s.waiting == 3
    tasks[1].cancel()
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]
    assert s.waiting == 2
    s.release()  # -> tasks[0]
    await tasks[0]
    s.release()  # -> tasks[2] (skips the cancelled one)
    await tasks[2]
    s.release()
    assert (s.in_flight, s.waiting) == (0, 0)


@pytest.mark.asyncio
async def test_slot_handed_to_a_cancelled_waiter_is_passed_on():
    s = SlidingWindow(1)
    await s.acquire()
    a = asyncio.create_task(s.acquire())
    b = asyncio.create_task(s.acquire())
    await _settle()
    # Hand the slot to `a`, then cancel `a` before it gets to run.
    s.release()
    a.cancel()
    with pytest.raises(asyncio.CancelledError):
        await a
    await asyncio.wait_for(b, 1)  # b got the slot `a` gave back
    assert s.in_flight == 1
    s.release()
    assert (s.in_flight, s.waiting) == (0, 0)


@pytest.mark.asyncio
async def test_cancel_with_wait_for_timeouts_never_leaks():
    s = SlidingWindow(3)

    async def job() -> None:
        try:
            await asyncio.wait_for(s.acquire(), timeout=random.random() * 0.004)
        except asyncio.TimeoutError:
            return
        try:
            await asyncio.sleep(random.random() * 0.002)
        finally:
            s.release()

    await asyncio.gather(*(job() for _ in range(300)))
    assert (s.in_flight, s.waiting) == (0, 0)


@pytest.mark.asyncio
async def test_waiter_on_a_closed_loop_is_skipped():
    s = SlidingWindow(1)
    await s.acquire()
    queued = threading.Event()
    close_now = threading.Event()

    def thread_main() -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(lambda *_: None)  # silence "Task was destroyed"
        loop.create_task(s.acquire())
        loop.run_until_complete(asyncio.sleep(0.01))
        queued.set()
        close_now.wait(5)
        loop.close()  # abandoned, without cancelling its waiting task

    t = threading.Thread(target=thread_main, daemon=True)
    t.start()
    await asyncio.to_thread(queued.wait, 5)
    assert s.waiting == 1
    close_now.set()
    await asyncio.to_thread(t.join, 5)
    mine = asyncio.create_task(s.acquire())
    await _settle()
    s.release()  # the closed loop's waiter must not swallow this slot
    await asyncio.wait_for(mine, 1)
    s.release()
    assert s.in_flight == 0


@pytest.mark.asyncio
async def test_slot_granted_to_a_loop_that_closes_before_resuming_is_reclaimed():
    s = SlidingWindow(1)
    await s.acquire()
    queued = threading.Event()
    released = threading.Event()

    def thread_main() -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(lambda *_: None)
        loop.create_task(s.acquire())
        loop.run_until_complete(asyncio.sleep(0.01))  # waiter queued, loop stopped
        queued.set()
        released.wait(5)  # slot handed over while the loop is not running
        loop.close()  # ... and it never will run again

    t = threading.Thread(target=thread_main, daemon=True)
    t.start()
    await asyncio.to_thread(queued.wait, 5)
    s.release()
    assert s.in_flight == 1  # reserved for the (stopped) waiter
    released.set()
    await asyncio.to_thread(t.join, 5)
    await asyncio.wait_for(s.acquire(), 1)  # reclaimed from the closed loop
    s.release()
    assert (s.in_flight, s.waiting) == (0, 0)


@pytest.mark.asyncio
async def test_resize_grow_wakes_waiters_and_shrink_drains():
    s = SlidingWindow(1)
    await s.acquire()
    tasks = [asyncio.create_task(s.acquire()) for _ in range(3)]
    await _settle()
    s.resize(4)  # room for all three
    await asyncio.wait_for(asyncio.gather(*tasks), 1)
    assert s.in_flight == 4
    s.resize(2)  # nobody is pre-empted
    assert s.in_flight == 4
    late = asyncio.create_task(s.acquire())
    await _settle()
    assert not late.done()
    s.release()
    s.release()
    await _settle()
    assert not late.done()  # in_flight is 2 == limit
    s.release()
    await asyncio.wait_for(late, 1)
    s.release()
    s.release()
    assert (s.in_flight, s.waiting) == (0, 0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.asyncio
async def test_forked_child_gets_a_fresh_idle_gate_even_if_a_thread_held_the_lock():
    s = SlidingWindow(2)
    await s.acquire()  # a parent holder; meaningless in the child
    lock_held = threading.Event()
    let_go = threading.Event()

    def hog() -> None:
        with s._lock:  # held by a thread that will not exist in the child
            lock_held.set()
            let_go.wait(5)

    t = threading.Thread(target=hog)
    t.start()
    lock_held.wait(5)
    try:
        pid = os.fork()
        if pid == 0:  # child: must not deadlock, must see an idle gate
            code = 1
            try:

                async def child() -> None:
                    await asyncio.wait_for(s.acquire(), 1)
                    await asyncio.wait_for(s.acquire(), 1)
                    s.release()
                    s.release()

                asyncio.run(child())
                code = 0 if (s.in_flight, s.waiting) == (0, 0) else 2
            finally:
                os._exit(code)
    finally:
        let_go.set()
        t.join(5)
    _, status = await asyncio.to_thread(os.waitpid, pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    s.release()


def test_snapshot_fields():
    snap = Adaptive(initial=3, max=9).snapshot()
    for key in ("limit", "in_flight", "waiting", "increases", "decreases", "rate_limited"):
        assert key in snap
    assert snap["limit"] == 3 and snap["strategy"] == "Adaptive"


# ---------------------------------------------------------------------------
# many threads x many loops
# ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_sliding_window_shared_by_four_thread_loops_and_the_main_loop():
    s = SlidingWindow(5)
    peak = _Peak()

    async def workload() -> None:
        async def job() -> None:
            for _ in range(8):
                async with s.slot():
                    peak.enter(s)
                    await asyncio.sleep(random.random() * 0.001)
                    peak.exit()

        await asyncio.gather(*(job() for _ in range(15)))

    threads, errors = _run_in_threads(4, workload)
    await workload()  # the main loop competes at the same time
    await _join(threads)
    assert not errors
    assert not peak.violations
    assert 1 <= peak.peak <= 5
    assert (s.in_flight, s.waiting) == (0, 0)


@pytest.mark.asyncio
async def test_adaptive_growing_across_thread_loops_respects_current_limit():
    a = Adaptive(initial=2, max=12)
    peak = _Peak()

    async def workload() -> None:
        async def job() -> None:
            for _ in range(10):
                async with a.slot():
                    peak.enter(a)  # limit only grows here, so this must hold
                    await asyncio.sleep(random.random() * 0.001)
                    peak.exit()
                    a.on_success()

        await asyncio.gather(*(job() for _ in range(20)))

    threads, errors = _run_in_threads(4, workload)
    await workload()
    await _join(threads)
    assert not errors
    assert not peak.violations
    assert peak.peak <= 12
    assert a.limit > 2  # it did grow while loaded
    assert (a.in_flight, a.waiting) == (0, 0)


@pytest.mark.asyncio
async def test_stress_resize_rate_limits_and_cancellation_across_threads():
    a = Adaptive(initial=4, min=1, max=10, cooldown=0.0)
    peak = _Peak()
    stop = threading.Event()

    async def workload() -> None:
        async def job() -> None:
            for _ in range(10):
                try:
                    await asyncio.wait_for(a.acquire(), timeout=random.random() * 0.01)
                except asyncio.TimeoutError:
                    continue
                try:
                    peak.enter()
                    await asyncio.sleep(random.random() * 0.001)
                    peak.exit()
                    if random.random() < 0.1:
                        a.on_rate_limited()
                    else:
                        a.on_success()
                finally:
                    a.release()

        await asyncio.gather(*(job() for _ in range(15)))

    def resizer() -> None:
        while not stop.is_set():
            a.resize(random.randint(1, 10))
            time.sleep(0.0005)

    r = threading.Thread(target=resizer, daemon=True)
    r.start()
    threads, errors = _run_in_threads(4, workload)
    try:
        await workload()
        await _join(threads)
    finally:
        stop.set()
        await asyncio.to_thread(r.join, 5)
    assert not errors
    assert peak.peak <= 10
    # Nothing leaked, nobody stranded.
    assert (a.in_flight, a.waiting) == (0, 0)
    async with a.slot():
        pass


# ---------------------------------------------------------------------------
# Adaptive (AIMD)
# ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_adaptive_increases_once_per_round_at_full_load():
    a = Adaptive(initial=4, max=10, increase=2, slow_start=False)
    for _ in range(4):
        await a.acquire()  # full load
    for _ in range(3):
        a.on_success()
    assert a.limit == 4
    a.on_success()  # 4th success at full load: one round
    assert a.limit == 6
    assert a.snapshot()["increases"] == 1
    for _ in range(4):
        a.release()


@pytest.mark.asyncio
async def test_adaptive_slow_start_doubles_per_round_until_first_rate_limit():
    a = Adaptive(initial=4, max=100, increase=1, decrease_factor=0.5, cooldown=0)
    held = [await a.acquire() for _ in range(4)]
    for _ in range(4):
        a.on_success()  # one full round of 4
    assert a.limit == 8  # doubled, not +1
    held += [await a.acquire() for _ in range(4)]
    for _ in range(8):
        a.on_success()
    assert a.limit == 16
    a.on_rate_limited()  # the provider pushed back: halve and leave slow start
    assert a.limit == 8
    for _ in range(8):
        a.on_success()  # 8 in flight = full load at the new limit
    assert a.limit == 9  # additive from now on
    for _ in held:
        a.release()


def test_adaptive_does_not_grow_at_light_load():
    a = Adaptive(initial=10, max=50)
    for _ in range(1000):
        a.on_success()  # nothing in flight: no evidence a bigger limit is safe
    assert a.limit == 10


@pytest.mark.asyncio
async def test_adaptive_growth_wakes_waiters_and_is_clamped_at_max():
    a = Adaptive(initial=1, max=2)
    await a.acquire()
    waiter = asyncio.create_task(a.acquire())
    await _settle()
    a.on_success()  # one round of a window of 1 at full load
    assert a.limit == 2
    await asyncio.wait_for(waiter, 1)
    for _ in range(10):
        a.on_success()
    assert a.limit == 2
    a.release()
    a.release()


def test_adaptive_multiplicative_decrease_with_cooldown_and_min():
    a = Adaptive(initial=40, min=3, max=100, decrease_factor=0.5, cooldown=0.05)
    a.on_rate_limited()
    assert a.limit == 20
    for _ in range(20):  # the rest of the same burst
        a.on_rate_limited()
    assert a.limit == 20
    time.sleep(0.06)
    a.on_rate_limited()
    assert a.limit == 10
    for _ in range(5):
        time.sleep(0.06)
        a.on_rate_limited()
    assert a.limit == 3  # clamped at min
    snap = a.snapshot()
    assert snap["decreases"] == 4 and snap["rate_limited"] == 27


@pytest.mark.asyncio
async def test_adaptive_undoes_a_probe_step_that_overshoots_during_cooldown():
    a = Adaptive(initial=8, max=20, increase=1, decrease_factor=0.5, cooldown=10.0, slow_start=False)
    a.on_rate_limited()
    assert a.limit == 4
    a.on_rate_limited()  # same burst: nothing more
    assert a.limit == 4
    held = [await a.acquire() for _ in range(4)]
    for _ in range(4):
        a.on_success()  # one clean round at full load: probe 5
    assert a.limit == 5
    a.on_rate_limited()  # 5 was too many: back to 4, no second halving
    assert a.limit == 4
    a.on_rate_limited()
    assert a.limit == 4  # never below the level right after the cut
    for _ in held:
        a.release()


@pytest.mark.asyncio
async def test_adaptive_retry_after_holds_increases():
    a = Adaptive(initial=2, max=10, cooldown=0)
    await a.acquire()
    await a.acquire()
    a.on_rate_limited(retry_after=0.05)
    assert a.limit == 1
    for _ in range(5):
        a.on_success()
    assert a.limit == 1  # still inside the server's Retry-After
    await asyncio.sleep(0.06)
    a.on_success()
    assert a.limit == 2
    a.release()
    a.release()


def test_adaptive_errors_do_not_resize():
    a = Adaptive(initial=8)
    a.on_error(RuntimeError("boom"))
    assert a.limit == 8 and a.snapshot()["errors"] == 1
    s = SlidingWindow(8)
    s.on_error(RuntimeError("boom"))
    s.on_rate_limited()
    assert s.limit == 8 and s.snapshot()["rate_limited"] == 1


class _FakeServer:
    """Answers 429 (quickly) when more than `capacity` calls are in flight."""

    def __init__(self, capacity: int = 30, latency: float = 0.02) -> None:
        self.capacity = capacity
        self.latency = latency
        self.in_flight = 0
        self.rejected = 0
        self.served = 0

    async def call(self) -> int:
        self.in_flight += 1
        if self.in_flight > self.capacity:
            self.in_flight -= 1
            self.rejected += 1
            await asyncio.sleep(0.002)
            return 429
        try:
            await asyncio.sleep(self.latency)
        finally:
            self.in_flight -= 1
        self.served += 1
        return 200


@pytest.mark.asyncio
@pytest.mark.parametrize("slow_start", [True, False], ids=["slow-start", "additive-only"])
async def test_adaptive_converges_near_server_capacity(slow_start):
    server = _FakeServer(capacity=30, latency=0.02)
    a = Adaptive(initial=5, max=200, slow_start=slow_start)
    samples: list[tuple[float, int]] = []
    finished = asyncio.Event()

    async def sampler() -> None:
        while not finished.is_set():
            samples.append((time.perf_counter(), a.limit))
            await asyncio.sleep(0.002)

    async def job() -> None:
        while True:
            async with a.slot():
                status = await server.call()
                if status == 200:
                    a.on_success()
                else:
                    a.on_rate_limited()
            if status == 200:
                return
            await asyncio.sleep(0.005 + random.random() * 0.005)  # short backoff

    sampling = asyncio.create_task(sampler())
    t0 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(job() for _ in range(600))), 15)
    elapsed = time.perf_counter() - t0
    finished.set()
    await sampling

    assert server.served == 600
    assert min(limit for _, limit in samples) >= a.min
    # Time-weighted mean of the limit over the second half of the run.
    half = t0 + elapsed / 2
    second = [(t, limit) for t, limit in samples if t >= half]
    assert len(second) >= 5
    weighted = sum((t2 - t1) * l1 for (t1, l1), (t2, _) in zip(second, second[1:]))
    mean = weighted / (second[-1][0] - second[0][0])
    assert 15 <= mean <= 45, (mean, a.snapshot())
    snap = a.snapshot()
    assert snap["decreases"] >= 1
    assert max(limit for _, limit in samples) >= 30  # it found the capacity
    if slow_start:
        assert snap["increases"] <= 10  # doubling: a handful of steps from 5 past 30
    else:
        assert snap["increases"] >= 20  # one step per round all the way from 5
    assert max(limit for _, limit in samples) < 60


# ---------------------------------------------------------------------------
# current-strategy hook
# ---------------------------------------------------------------------------


def test_notify_without_strategy_is_a_no_op():
    assert current_strategy.get() is None
    assert notify_rate_limited() is False
    assert notify_success() is False
    assert notify_error(RuntimeError()) is False


@pytest.mark.asyncio
async def test_notify_reaches_current_strategy_also_from_worker_threads():
    a = Adaptive(initial=8, decrease_factor=0.5, cooldown=0)
    with use_strategy(a):
        assert notify_rate_limited(retry_after=0.01) is True
        assert a.limit == 4
        # asyncio.to_thread copies the context, as the executor does.
        assert await asyncio.to_thread(notify_rate_limited) is True
        assert a.limit == 2
        ctx = contextvars.copy_context()
        t = threading.Thread(target=ctx.run, args=(notify_error, ValueError("x")))
        t.start()
        t.join()
        assert notify_success() is True
    assert current_strategy.get() is None
    snap = a.snapshot()
    assert snap["rate_limited"] == 2 and snap["errors"] == 1 and snap["successes"] == 1


@pytest.mark.asyncio
async def test_call_with_retries_reports_rate_limits_to_current_strategy():
    from scenario.llm.retry import RetryPolicy, call_with_retries

    class Fake429(Exception):
        status_code = 429

    calls = 0

    async def fn() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise Fake429()
        return "ok"

    async def no_sleep(_: float) -> None:
        return None

    s = SlidingWindow(4)
    with use_strategy(s):
        value, attempts = await call_with_retries(fn, RetryPolicy(sleep=no_sleep), report_rate_limits=True)
    assert (value, attempts) == ("ok", 3)
    assert s.snapshot()["rate_limited"] == 2
    with use_strategy(s):  # off by default: callers reporting from on_retry must not double count
        calls = 0
        await call_with_retries(fn, RetryPolicy(sleep=no_sleep))
    assert s.snapshot()["rate_limited"] == 2


# ---------------------------------------------------------------------------
# resources
# ---------------------------------------------------------------------------


def test_available_memory_is_positive_or_unknown():
    value = resources.available_memory_bytes()
    assert value is None or (isinstance(value, int) and value > 0)


def test_default_max_workers_bounds(monkeypatch):
    gib = 1024**3
    monkeypatch.setattr(resources, "available_memory_bytes", lambda: 64 * gib)
    assert resources.default_max_workers() == 512
    assert resources.default_max_workers(cap=32) == 32
    monkeypatch.setattr(resources, "available_memory_bytes", lambda: 160 * 1024 * 1024)
    assert resources.default_max_workers() == 10  # 160 MiB / 16 MiB
    monkeypatch.setattr(resources, "available_memory_bytes", lambda: 1024)
    assert resources.default_max_workers() == 4  # floor
    assert resources.default_max_workers(cap=2) == 2  # an explicit cap wins
    monkeypatch.setattr(resources, "available_memory_bytes", lambda: None)
    assert resources.default_max_workers() == 128  # 2 GiB assumed
    with pytest.raises(ValueError, match="cap=0"):
        resources.default_max_workers(cap=0)


def test_meminfo_and_cgroup_parsing(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  1000 kB\nMemFree: 10 kB\nMemAvailable:    2048 kB\n")
    assert resources._meminfo_available(str(meminfo)) == 2048 * 1024
    assert resources._meminfo_available(str(tmp_path / "missing")) is None

    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.max").write_text("1000000\n")
    (v2 / "memory.current").write_text("400000\n")
    assert resources._cgroup_available(str(v2)) == 600000
    (v2 / "memory.max").write_text("max\n")
    assert resources._cgroup_available(str(v2)) is None

    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "memory.limit_in_bytes").write_text(str(1 << 62))  # "unlimited"
    assert resources._cgroup_available(str(v1)) is None
    (v1 / "memory" / "memory.limit_in_bytes").write_text("5000")
    (v1 / "memory" / "memory.usage_in_bytes").write_text("1000")
    assert resources._cgroup_available(str(v1)) == 4000
