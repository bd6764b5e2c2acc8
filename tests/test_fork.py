"""The after-fork registry: each owner of process-wide state resets its own state in a forked
child, so a child's first call works instead of hanging on the parent's threads and loops."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from scenario import configure, fork, live
from scenario.concurrency.rate_limits import RateLimit, RateLimiter
from scenario.concurrency.strategies import SlidingWindow
from scenario.llm import model_loop as loop_owner
from scenario.llm import replay_cache, retry
from scenario.runtime import worker_pool

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")

CHILD_TIMEOUT = 30.0


def in_forked_child(body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``body`` in a forked child and return what it returned; fail if the child hangs."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running the parent's exit handlers
        os.close(read)
        try:
            payload = json.dumps(body())
        except BaseException as exc:
            payload = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
        os.write(write, payload.encode())
        os._exit(0)
    os.close(write)
    chunks = []
    deadline = time.monotonic() + CHILD_TIMEOUT
    try:
        while True:
            ready, _, _ = select.select([read], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                pytest.fail(f"the forked child did not answer within {CHILD_TIMEOUT:.0f}s (it hangs)")
            chunk = os.read(read, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    return json.loads(b"".join(chunks) or b"{}")


def test_hooks_run_in_registration_order_and_registering_twice_runs_once(monkeypatch):
    monkeypatch.setattr(fork, "_hooks", [])
    calls = []
    first = fork.register(lambda: calls.append("first"))
    fork.register(lambda: calls.append("second"))
    fork.register(first)
    fork.reset_all()
    assert calls == ["first", "second"]
    assert fork.registered()[0] is first


def test_a_failing_hook_does_not_stop_the_others_and_its_error_surfaces(monkeypatch):
    monkeypatch.setattr(fork, "_hooks", [])
    calls = []

    def broken() -> None:
        raise RuntimeError("cannot reset")

    fork.register(broken)
    fork.register(lambda: calls.append("after"))
    with pytest.raises(RuntimeError, match="cannot reset"):
        fork.reset_all()
    assert calls == ["after"]


def test_registering_something_that_is_not_callable_is_refused():
    with pytest.raises(TypeError, match="callable"):
        fork.register("reset")  # type: ignore[arg-type]


def test_every_owner_of_process_wide_state_is_registered():
    owners = {hook.__module__ for hook in fork.registered()}
    assert {"scenario.llm.model_loop", "scenario.llm.replay_cache", "scenario.llm.retry", "scenario.runtime.worker_pool",
            "scenario.concurrency.rate_limits", "scenario.concurrency.strategies", "scenario.telemetry.tracer",
            "scenario.telemetry.usage_processor", "scenario.telemetry.once", "scenario.live"} <= owners


def test_a_forked_child_gets_its_own_worker_pool_and_model_loop_and_both_work():
    # The parent's pool and model loop are running (threads the child will not have).
    assert worker_pool.get_pool().submit(lambda: 1).result(5) == 1
    assert loop_owner.model_loop.submit(asyncio.sleep(0, result=2)).result(5) == 2
    parent_pool, parent_loop = worker_pool.get_pool(), loop_owner.model_loop

    def child() -> dict[str, Any]:
        async def on_the_model_loop() -> int:
            return await loop_owner.model_loop.run(asyncio.sleep(0, result=3), timeout=5)

        return {
            "new_pool": worker_pool.get_pool() is not parent_pool,
            "pool_works": worker_pool.get_pool().submit(lambda: 4).result(5),
            "new_model_loop": loop_owner.model_loop is not parent_loop,
            "model_loop_works": asyncio.run(on_the_model_loop()),
        }

    assert in_forked_child(child) == {"new_pool": True, "pool_works": 4, "new_model_loop": True,
                                      "model_loop_works": 3}
    # The parent's own are untouched.
    assert worker_pool.get_pool() is parent_pool and loop_owner.model_loop is parent_loop
    assert loop_owner.model_loop.submit(asyncio.sleep(0, result=5)).result(5) == 5


def test_a_limiter_held_by_another_thread_at_fork_time_is_free_in_the_child():
    limiter = RateLimiter(RateLimit(requests_per_minute=600))
    strategy = SlidingWindow(2)
    holding, release = threading.Event(), threading.Event()

    def hold_the_locks() -> None:
        # Whatever a limiter or strategy guards with its lock, a thread is inside it at fork time.
        with limiter._lock, strategy._lock:
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_locks)
    holder.start()
    holding.wait(5)
    try:
        def child() -> dict[str, Any]:
            async def take_a_slot() -> int:
                async with strategy.slot():
                    return strategy.in_flight

            return {"wait": limiter.reserve(1), "in_flight": asyncio.run(take_a_slot())}

        assert in_forked_child(child) == {"wait": 0.0, "in_flight": 1}
    finally:
        release.set()
        holder.join(5)


def test_a_retry_wait_and_a_cache_write_in_progress_in_another_thread_do_not_block_the_child(tmp_path):
    token = retry.retry_board.add(60, "rate_limit")
    holding, release = threading.Event(), threading.Event()

    def write_slowly() -> None:
        with replay_cache._write_lock:  # a cache write in progress at fork time
            holding.set()
            release.wait(10)

    writer = threading.Thread(target=write_slowly)
    writer.start()
    holding.wait(5)
    try:
        def child() -> dict[str, Any]:
            replay_cache.store(replay_cache.make_key("ns", "k", 1), {"answer": 1})
            return {"waiting": retry.retry_board.snapshot().retrying,
                    "cached": replay_cache.load(replay_cache.make_key("ns", "k", 1))}

        configure(cache_dir=str(tmp_path))
        assert in_forked_child(child) == {"waiting": 0, "cached": {"answer": 1}}
        assert retry.retry_board.snapshot().retrying == 1  # the parent's wait is still listed here
    finally:
        release.set()
        writer.join(5)
        retry.retry_board.remove(token)


def test_a_forked_child_does_not_write_live_transcripts_through_the_parents_sink():
    class Store:
        def put_live(self, *args: Any, **kwargs: Any) -> None:
            raise AssertionError("written from the child")

    token = live.current_sink.set(live.LiveSink(Store(), "batch", after=0, every=0))
    try:
        def child() -> dict[str, Any]:
            live.running("run-1", "suite", "scenario", "default", 0)
            live.message_added([{"role": "user", "content": "hi"}], 0)
            return {"sink": live.current_sink.get() is not None}

        assert in_forked_child(child) == {"sink": False}
        assert live.current_sink.get() is not None  # the parent keeps its own
    finally:
        live.current_sink.reset(token)
