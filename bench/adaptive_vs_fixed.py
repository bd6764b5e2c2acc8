"""Adaptive (AIMD) concurrency vs fixed sliding windows against a simulated server.

The simulated provider serves at most ``--capacity`` calls at once (each takes
``--latency`` seconds) and answers 429 at once to any call beyond that. Every
job retries on 429 after a short jittered backoff until it succeeds. Compared:

* ``Adaptive(initial=5, max=200)`` -- has to discover the capacity;
* ``SlidingWindow(capacity)``      -- the oracle: someone told it the right number;
* ``SlidingWindow(100)``           -- a limit set too high: finishes, but hammers
  the server with 429s.

Jobs can be spread over several threads, each with its own event loop (what the
``run`` executor does), sharing one strategy and one server.

    .venv/bin/python -m bench.adaptive_vs_fixed [--jobs 600] [--runs 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import threading
import time

from scenario.concurrency.strategies import Adaptive, ConcurrencyStrategy, SlidingWindow


class SimulatedServer:
    """Thread-safe: callers on any loop share the in-flight count."""

    def __init__(self, capacity: int, latency: float, reject_latency: float = 0.002) -> None:
        self.capacity = capacity
        self.latency = latency
        self.reject_latency = reject_latency
        self._lock = threading.Lock()
        self._in_flight = 0
        self.rejected = 0
        self.served = 0

    async def call(self) -> int:
        with self._lock:
            self._in_flight += 1
            overloaded = self._in_flight > self.capacity
            if overloaded:
                self._in_flight -= 1
                self.rejected += 1
        if overloaded:
            await asyncio.sleep(self.reject_latency)
            return 429
        try:
            await asyncio.sleep(self.latency)
        finally:
            with self._lock:
                self._in_flight -= 1
                self.served += 1
        return 200


async def _jobs(strategy: ConcurrencyStrategy, server: SimulatedServer, n: int) -> None:
    async def job() -> None:
        while True:
            async with strategy.slot():
                status = await server.call()
                if status == 200:
                    strategy.on_success()
                else:
                    strategy.on_rate_limited()
            if status == 200:
                return
            await asyncio.sleep(0.005 + random.random() * 0.005)

    await asyncio.gather(*(job() for _ in range(n)))


def run_once(strategy: ConcurrencyStrategy, jobs: int, threads: int, capacity: int, latency: float) -> dict:
    server = SimulatedServer(capacity, latency)
    shares = [jobs // threads + (1 if i < jobs % threads else 0) for i in range(threads)]
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            asyncio.run(_jobs(strategy, server, n))
        except BaseException as exc:  # reported below
            errors.append(exc)

    start = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(n,)) for n in shares]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return {"elapsed": elapsed, "served": server.served, "rejected": server.rejected, **strategy.snapshot()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="threads, each with its own event loop")
    parser.add_argument("--capacity", type=int, default=30)
    parser.add_argument("--latency", type=float, default=0.02)
    args = parser.parse_args()

    print(
        f"{args.jobs} jobs x {args.runs} runs, server capacity {args.capacity}, "
        f"{args.latency * 1000:.0f} ms per call, {args.threads} thread(s)/loop(s)"
    )
    ratios: list[float] = []
    sliding100: list[dict] = []
    for i in range(1, args.runs + 1):
        a = run_once(Adaptive(initial=5, max=200), args.jobs, args.threads, args.capacity, args.latency)
        f = run_once(SlidingWindow(args.capacity), args.jobs, args.threads, args.capacity, args.latency)
        h = run_once(SlidingWindow(100), args.jobs, args.threads, args.capacity, args.latency)
        ratios.append(a["elapsed"] / f["elapsed"])
        sliding100.append(h)
        print(
            f"run {i}: adaptive {a['elapsed']:.3f}s (final limit {a['limit']}, +{a['increases']}/-{a['decreases']}, "
            f"{a['rejected']} x 429) | sliding{args.capacity} {f['elapsed']:.3f}s ({f['rejected']} x 429) | "
            f"sliding100 {h['elapsed']:.3f}s ({h['rejected']} x 429)"
        )
    print(
        f"ratio adaptive/sliding{args.capacity}: median {statistics.median(ratios):.2f} "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f}) over {len(ratios)} runs"
    )
    finished = sum(1 for h in sliding100 if h["served"] == args.jobs)
    print(
        f"sliding100: finished all {args.jobs} jobs in {finished}/{len(sliding100)} runs; "
        f"429s per run: {[h['rejected'] for h in sliding100]}"
    )
    return 0 if finished == len(sliding100) else 1


if __name__ == "__main__":
    raise SystemExit(main())
