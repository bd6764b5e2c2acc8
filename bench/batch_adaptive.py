"""Adaptive vs fixed concurrency against a server that answers 429 above 30 requests in flight.

600 autopilot runs (4 model calls each) against the mock model with
``--rate-limit-above 30`` (Retry-After 0.5 s). Compared, in one process run:

* ``Adaptive(initial=10, max=100)`` (defaults otherwise) -- has to find the server's limit by itself
  (slow start, then AIMD);
* ``SlidingWindow(30)``             -- the oracle, told the right number;
* ``SlidingWindow(100)``            -- set too high: must still finish every run (retries).

Goals: Adaptive within 1.2x of SlidingWindow(30)'s time; SlidingWindow(100) finishes every run.
Every strategy gets the same model-call retry policy and ``retries=3`` per run.

    .venv/bin/python -m bench.batch_adaptive [--runs 600] [--latency 0.3] [--executor loop]
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bench.batch_common import MODEL, autopilot_spec, measured, mock_server, ratio_line, warm_up


async def one(strategy: object, runs: int, executor: str) -> tuple[float, object]:
    import scenario

    with measured() as m:
        result = await scenario.run_batch([autopilot_spec()], runs=runs, executor=executor, concurrency=strategy,
                                          retries=3)
    return m.wall, result


async def main(args: argparse.Namespace) -> int:
    import scenario

    with mock_server(latency=args.latency, rate_limit_above=30) as url:
        await warm_up(url)
        scenario.configure(
            default_model=scenario.ModelConfig(model=MODEL, api_base=url, api_key="mock", timeout=30),
            retry=scenario.RetryPolicy(max_attempts=8, initial_backoff=0.2, max_backoff=5.0),
        )
        strategies = {
            "Adaptive(initial=10, max=100)": scenario.Adaptive(initial=10, max=100),
            "SlidingWindow(30)": scenario.SlidingWindow(30),
            "SlidingWindow(100)": scenario.SlidingWindow(100),
        }
        times = {}
        results = {}
        for name, strategy in strategies.items():
            times[name], results[name] = await one(strategy, args.runs, args.executor)
    print(f"adaptive vs fixed: {args.runs} runs x 4 calls, mock latency {args.latency}s, 429 above 30 in flight, "
          f"executor {args.executor}")
    for name in strategies:
        result = results[name]
        snap = result.metadata["concurrency"]
        print(f"  {name:66} {times[name]:6.1f}s  passed {result.passed_runs}/{args.runs}  "
              f"429s seen {snap['rate_limited']}  final limit {snap['limit']}  decreases {snap['decreases']}")
    adaptive = next(iter(strategies))
    ratio = times[adaptive] / times["SlidingWindow(30)"]
    ok_ratio = ratio <= 1.2
    finished = results["SlidingWindow(100)"].passed_runs == args.runs
    adaptive_finished = results[adaptive].passed_runs == args.runs
    print(ratio_line("adaptive time / SlidingWindow(30) time", ratio, "<= 1.20", ok_ratio and adaptive_finished))
    print(ratio_line("SlidingWindow(100) runs finished / runs", results["SlidingWindow(100)"].passed_runs / args.runs,
                     "1.0", finished))
    return 0 if ok_ratio and finished and adaptive_finished else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=600)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--executor", default="loop", choices=["loop", "thread"])
    sys.exit(asyncio.run(main(parser.parse_args())))
