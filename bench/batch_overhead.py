"""Engine and batch overhead with no model calls, and memory per run in flight.

* CPU per run of a scripted scenario (user line, agent reply, verdict: no model call) run
  2,000 times through ``run_batch`` under each executor. Goal: <= 0.5 ms per run.
* Memory per run in flight: 1,000 runs held inside their agent at once (it polls an event),
  Python heap (tracemalloc) and resident memory before and while they wait, divided by the runs
  in flight. Under the thread executor the runs in flight are bounded by the worker pool
  (memory-aware cap), so it reports how many actually were in flight; its resident figure
  includes each worker thread's stack and event loop.

    .venv/bin/python -m bench.batch_overhead [--runs 2000] [--held 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import threading

from bench.batch_common import EchoAgent, measured, ratio_line, rss_bytes


def scripted_spec() -> object:
    import scenario

    return scenario.Scenario(name="scripted", description="no model calls", agents=[EchoAgent],
                             script=[scenario.user("hi"), scenario.agent(), scenario.succeed()])


async def cpu_per_run(runs: int, executor: str) -> float:
    import scenario

    with measured() as m:
        result = await scenario.run_batch([scripted_spec()], runs=runs, executor=executor, max_concurrency=200)
    assert result.passed_runs == runs
    return 1000 * m.cpu / runs


async def memory_per_run_in_flight(held: int, executor: str) -> tuple[float, float, int]:
    import scenario

    release = threading.Event()
    inside = 0
    lock = threading.Lock()

    class Holder(scenario.AgentAdapter):
        async def call(self, input: scenario.AgentInput) -> str:
            nonlocal inside
            with lock:
                inside += 1
            while not release.is_set():
                await asyncio.sleep(0.05)
            return "released"

    spec = scenario.Scenario(name="held", description="held in flight", agents=[Holder],
                             script=[scenario.user("hi"), scenario.agent(), scenario.succeed()])
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    heap_before = tracemalloc.get_traced_memory()[0]
    before = rss_bytes()
    task = asyncio.ensure_future(scenario.run_batch([spec], runs=held, executor=executor, max_concurrency=held))
    from scenario.runtime.worker_pool import pool_size

    expected = held if executor == "loop" else min(held, pool_size())
    for _ in range(600):
        await asyncio.sleep(0.05)
        if inside >= expected:
            break
    await asyncio.sleep(0.3)
    during = rss_bytes()
    heap_during = tracemalloc.get_traced_memory()[0]
    in_flight = inside
    release.set()
    result = await task
    tracemalloc.stop()
    assert result.passed_runs == held
    n = max(1, in_flight)
    return (heap_during - heap_before) / n, (during - before) / n, in_flight


async def main(args: argparse.Namespace) -> int:
    await cpu_per_run(200, "thread")  # warm-up: imports, first loop, first threads
    await cpu_per_run(200, "loop")
    ok = True
    best: dict = {}
    for _ in range(args.rounds):
        for executor in ("thread", "loop"):
            best[executor] = min(best.get(executor, 1e9), await cpu_per_run(args.runs, executor))
    for executor, ms in best.items():
        passed = ms <= 0.5
        ok = ok and passed
        print(ratio_line(f"engine+batch CPU per scripted run, {executor} (ms)", ms, "<= 0.5", passed))
    for executor in ("loop", "thread"):
        heap, rss, in_flight = await memory_per_run_in_flight(args.held, executor)
        print(f"memory per run in flight, {executor}: {heap / 1024:.0f} KiB Python heap, {rss / 1024:.0f} KiB resident "
              f"({in_flight} runs in flight)")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--held", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    sys.exit(asyncio.run(main(parser.parse_args())))
