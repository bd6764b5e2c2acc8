"""Clean processes: worker threads end when idle, kept loops close with their thread, and a long
soak of runs and batches leaves threads and file descriptors where it found them."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import scenario
from scenario.runtime import worker_pool
from scenario.runtime.worker_pool import WorkerPool, at_thread_exit
from tests.helpers.agents import EchoAgent
from tests.helpers.waiting import wait_until

SCRIPT = [scenario.user("hi"), scenario.agent(), scenario.succeed()]


# -- the pool itself ------------------------------------------------------------------------------
def test_blocking_jobs_run_in_parallel_up_to_the_cap_and_queue_beyond_it():
    pool = WorkerPool(4, idle_timeout=5)
    running = 0
    peak = 0
    lock = threading.Lock()
    release = threading.Event()

    def job() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(5)
        with lock:
            running -= 1

    try:
        futures = [pool.submit(job) for _ in range(10)]
        assert wait_until(lambda: running == 4)
        time.sleep(0.05)
        assert running == 4 and pool.thread_count() == 4  # capped: the other six wait their turn
        release.set()
        for future in futures:
            future.result(5)
        assert peak == 4
    finally:
        pool.shutdown()


def test_an_idle_thread_ends_after_the_idle_timeout_and_runs_its_exit_callbacks():
    pool = WorkerPool(8, idle_timeout=0.2)
    closed = []

    def job(index: int) -> str:
        at_thread_exit(lambda: closed.append(index))
        time.sleep(0.05)
        return threading.current_thread().name

    try:
        names = [f.result(5) for f in [pool.submit(job, i) for i in range(5)]]
        assert len(set(names)) == 5 and all(n.startswith("scenario-worker") for n in names)
        assert wait_until(lambda: pool.thread_count() == 0, 5)
        assert sorted(closed) == [0, 1, 2, 3, 4]
        assert not [t for t in threading.enumerate() if t.name in names]
        assert pool.submit(lambda: 42).result(5) == 42  # and new work starts a thread again
    finally:
        pool.shutdown()


def test_work_queued_while_threads_are_busy_is_never_stranded():
    """Many tiny jobs submitted from several threads at once all finish (no lost wake-up)."""
    pool = WorkerPool(3, idle_timeout=0.01)  # threads end almost at once: the racy path is hot
    try:
        results = []

        def submitter(base: int) -> None:
            futures = [pool.submit(lambda v=v: v) for v in range(base, base + 200)]
            results.extend(f.result(10) for f in futures)

        threads = [threading.Thread(target=submitter, args=(i * 1000,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(results) == sorted(v for i in range(4) for v in range(i * 1000, i * 1000 + 200))
    finally:
        pool.shutdown()


def test_threads_woken_for_work_another_thread_took_still_end_at_their_idle_timeout():
    """Waiters racing busy threads for each item: a waiter that loses an item just after its
    deadline passed must still end (``SimpleQueue.get(timeout=...)`` then blocked until the next
    submission, so a thread outlived its idle timeout for as long as no more work came)."""
    rng = random.Random(12)
    for round_ in range(20):
        pool = WorkerPool(50, idle_timeout=0.001 * rng.randint(1, 5))

        def submitter(seed: int) -> None:
            local = random.Random(seed)
            futures = []
            for _ in range(300):
                futures.append(pool.submit(time.sleep, local.random() * 0.002))
                if local.random() < 0.1:
                    time.sleep(local.random() * 0.003)
            for future in futures:
                future.result(10)

        try:
            threads = [threading.Thread(target=submitter, args=(round_ * 10 + i,)) for i in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert wait_until(lambda: pool.thread_count() == 0, 3), f"round {round_}: {pool.thread_count()} left"
        finally:
            pool.shutdown()


def test_after_a_burst_a_trickle_of_work_keeps_one_thread_busy_and_the_rest_end():
    pool = WorkerPool(8, idle_timeout=0.3)
    gate = threading.Event()
    try:
        burst = [pool.submit(gate.wait, 5) for _ in range(8)]
        assert wait_until(lambda: pool.thread_count() == 8)
        gate.set()
        for future in burst:
            future.result(5)
        names = set()
        for _ in range(20):  # one short job every 0.05 s for 1 s: well inside every idle timeout
            names.add(pool.submit(lambda: threading.current_thread().name).result(5))
            time.sleep(0.05)
        # The most recently idle thread serves each job (a second at most, should a job come before
        # the previous one's thread was back on the stack); the other burst threads timed out.
        assert len(names) <= 2
        assert pool.thread_count() <= 2
    finally:
        pool.shutdown()


def test_a_job_the_os_refuses_a_thread_for_is_not_taken(monkeypatch):
    pool = WorkerPool(2, idle_timeout=5)
    ran = []

    def refuse(self):
        raise RuntimeError("can't start new thread")

    try:
        with monkeypatch.context() as patched:
            patched.setattr(threading.Thread, "start", refuse)
            with pytest.raises(RuntimeError, match="can't start new thread"):
                pool.submit(ran.append, "refused")
        assert pool.thread_count() == 0
        assert pool.submit(lambda: "later").result(5) == "later"  # the pool still works afterwards
        time.sleep(0.05)
        assert ran == []  # the refused job did not run behind its caller's back
    finally:
        pool.shutdown()


@pytest.mark.parametrize("idle_timeout", [-1, float("nan")])
def test_an_idle_timeout_below_zero_or_nan_is_refused(idle_timeout):
    with pytest.raises(ValueError, match=r"idle_timeout=.*seconds must be 0 or more \(None: the default\)"):
        WorkerPool(2, idle_timeout=idle_timeout)


def test_shutdown_cancels_queued_work_and_refuses_new_work():
    pool = WorkerPool(1, idle_timeout=5)
    gate = threading.Event()
    first = pool.submit(gate.wait, 5)
    queued = pool.submit(lambda: "never")
    assert wait_until(lambda: first.running())
    pool.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()
    gate.set()
    assert first.result(5) is True
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(lambda: None)


def test_the_pool_is_usable_as_an_asyncio_executor():
    pool = WorkerPool(2, idle_timeout=5)
    try:
        async def main() -> str:
            return await asyncio.get_running_loop().run_in_executor(pool, lambda: threading.current_thread().name)

        assert asyncio.run(main()).startswith("scenario-worker")
    finally:
        pool.shutdown()


# -- through the public API -----------------------------------------------------------------------
@pytest.fixture
def short_idle(monkeypatch):
    monkeypatch.setattr(worker_pool, "IDLE_TIMEOUT", 0.3)
    worker_pool.shutdown()  # a pool made under this setting, with no threads yet
    yield 0.3
    worker_pool.shutdown()


@pytest.mark.asyncio
async def test_a_burst_of_100_runs_leaves_no_worker_thread_behind(short_idle):
    results = await asyncio.gather(*(
        scenario.run(name=f"burst{i}", description="d", agents=[EchoAgent()], script=SCRIPT) for i in range(100)
    ))
    assert all(r.success for r in results)
    pool = worker_pool.get_pool()
    assert pool.thread_count() >= 1
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, wait_until, lambda: pool.thread_count() == 0, 5)
    assert not [t for t in threading.enumerate() if t.name.startswith("scenario-worker")]


@pytest.mark.asyncio
async def test_loops_kept_by_batch_worker_threads_are_closed_when_the_threads_end(short_idle):
    loops = []

    class LoopRecorder(scenario.AgentAdapter):
        async def call(self, input):
            loops.append(asyncio.get_running_loop())
            return "ok"

    specs = [scenario.Scenario(name="kept", description="d", agents=[LoopRecorder()], script=SCRIPT)]
    result = await scenario.run_batch(specs, runs=40, executor="thread", max_concurrency=8)
    assert result.passed_runs == 40
    assert len(set(map(id, loops))) < 40  # threads did start later runs on the loop they kept
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, wait_until, lambda: worker_pool.get_pool().thread_count() == 0, 5)
    assert all(kept.is_closed() for kept in loops)


SOAK = r'''
import asyncio, json, os, sys, threading, time
from scenario.runtime import worker_pool
worker_pool.IDLE_TIMEOUT = 0.3
import scenario
from scenario.testing import MockLLMServer

class Echo(scenario.AgentAdapter):
    async def call(self, input):
        return "echo: " + input.last_new_user_message_str()

class SyncEcho(scenario.AgentAdapter):
    def call(self, input):
        return "sync echo: " + input.last_new_user_message_str()

SCRIPT = [scenario.user("hi"), scenario.agent(), scenario.succeed()]

def descriptors():
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:  # a descriptor listed a moment ago may be closed by now (another thread's socket)
            found.append(os.readlink(f"/proc/self/fd/{fd}").split("[")[0])
        except OSError:
            pass
    return sorted(found)

def threads():
    return sorted(t.name for t in threading.enumerate())

def team(i):
    agent = SyncEcho() if i % 2 else Echo()
    if i % 10:
        return dict(agents=[agent], script=SCRIPT)
    return dict(agents=[agent, scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=["ok"])])

async def settle(want_threads, want_fds):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (threads() != want_threads or descriptors() != want_fds):
        await asyncio.sleep(0.1)

async def main():
    with MockLLMServer() as server:
        scenario.configure(default_model=scenario.ModelConfig(model="openai/gpt-4o-mini", api_base=server.base_url,
                                                              api_key="mock", timeout=10))
        # warm-up: litellm imported, the model loop and its HTTP client up, every code path once
        for execute in (scenario.run, scenario.arun):
            for i in range(2):
                assert (await execute(name="warm", description="d", **team(i * 10))).success
        await settle(None, None)
        base_threads, base_fds = threads(), descriptors()
        ok = 0
        for execute in (scenario.run, scenario.arun):
            for burst in range(10):
                results = await asyncio.gather(*(execute(name=f"s{burst}-{i}", description="d", **team(i))
                                                 for i in range(100)))
                ok += sum(r.success for r in results)
        for executor in ("thread", "loop", "thread"):
            specs = [scenario.Scenario(name="async", description="d", agents=[Echo()], script=SCRIPT),
                     scenario.Scenario(name="sync", description="d", agents=[SyncEcho()], script=SCRIPT),
                     scenario.Scenario(name="model", description="d", agents=[Echo(), scenario.UserSimulatorAgent(),
                                                                             scenario.JudgeAgent(criteria=["ok"])])]
            result = await scenario.run_batch(specs, runs=100, executor=executor, max_concurrency=50)
            ok += result.passed_runs
        peak_threads = len(threads())
        await settle(base_threads, base_fds)
        print(json.dumps({"ok": ok, "peak_threads": peak_threads,
                          "threads": [base_threads, threads()], "fds": [base_fds, descriptors()]}))

asyncio.run(main())
'''


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors through /proc")
def test_soak_of_runs_arun_and_batches_returns_threads_and_descriptors_to_baseline(tmp_path):
    """1,000 `run` + 1,000 `arun` (bursts of 100; one in ten with the mock model's simulator and
    judge, half the agents synchronous) + three 300-run batches, in a fresh process."""
    env = dict(os.environ, AIOHTTP_KEEPALIVE_TIMEOUT="1", LITELLM_LOCAL_MODEL_COST_MAP="True",
               PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    out = subprocess.run([sys.executable, "-c", SOAK], capture_output=True, text=True, env=env, cwd=str(tmp_path),
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    assert facts["ok"] == 2900
    assert facts["peak_threads"] > len(facts["threads"][0])  # the soak did use worker threads
    assert facts["threads"][1] == facts["threads"][0]
    assert facts["fds"][1] == facts["fds"][0]
