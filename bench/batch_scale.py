"""Scale: 1,000 autopilot runs against a mock model at 0.1 s per call, concurrency 200.

Goal: the batch completes model calls at >= 90% of the throughput bare ``litellm.acompletion``
reaches on one loop with the same concurrency against the same server, under both executors.
The mock runs in its own process; every measurement is taken in this one run, interleaved, and
reported as a ratio, because the machine is shared and absolute numbers drift.

    .venv/bin/python -m bench.batch_scale [--runs 1000] [--concurrency 200] [--latency 0.1] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bench.batch_common import (
    agents_for_autopilot,
    bare_litellm,
    configure_library,
    measured,
    mock_server,
    ratio_line,
    warm_up,
)

CALLS_PER_RUN = 4  # user, judge (continue), user, judge (finish): the agent under test answers locally


async def batch_throughput(runs: int, concurrency: int, executor: str, processes: int = 1) -> tuple[float, float]:
    import scenario

    specs = [scenario.Scenario(name="scale", description="A customer asks about a parcel.",
                               agents=agents_for_autopilot())]
    with measured() as m:
        result = await scenario.run_batch(specs, runs=runs, executor=executor, max_concurrency=concurrency,
                                          processes=processes)
    if result.passed_runs != runs or result.usage.calls != runs * CALLS_PER_RUN:
        raise SystemExit(f"{executor}: expected {runs} passing runs with {runs * CALLS_PER_RUN} calls, got "
                         f"{result.passed_runs} passing, {result.usage.calls} calls:\n{result.summary()}")
    return result.usage.calls / m.wall, 1000 * m.cpu / result.usage.calls


async def main(args: argparse.Namespace) -> int:
    calls = args.runs * CALLS_PER_RUN
    with mock_server(latency=args.latency) as url:
        configure_library(url)
        await warm_up(url)
        names = ["bare", "thread", "loop", "thread, processes=2", "loop, processes=2"]
        best = {name: 0.0 for name in names}
        cpu = {name: 0.0 for name in names}
        for _ in range(args.rounds):
            bare = await bare_litellm(url, calls, args.concurrency)
            rate = calls / bare.wall
            if rate > best["bare"]:
                best["bare"], cpu["bare"] = rate, 1000 * bare.cpu / calls
            for name in names[1:]:
                executor, _, processes = name.partition(", processes=")
                rate, per_call = await batch_throughput(args.runs, args.concurrency, executor, int(processes or 1))
                if rate > best[name]:
                    best[name], cpu[name] = rate, per_call
    print(f"scale: {args.runs} runs x {CALLS_PER_RUN} calls, concurrency {args.concurrency}, mock latency {args.latency}s "
          f"(best of {args.rounds}, interleaved)")
    for name, rate in best.items():
        note = "" if "processes" not in name else " (CPU of the parent only)"
        print(f"  {name:20}: {rate:7.1f} calls/s, {cpu[name]:.2f} ms CPU per call{note}")
    ok = True
    for name in names[1:]:
        ratio = best[name] / best["bare"]
        if "processes" in name:
            print(f"scale {name} throughput / bare litellm on one loop: {ratio:.3f} (reference)")
            continue
        passed = ratio >= 0.9
        ok = ok and passed
        print(ratio_line(f"scale {name} throughput / bare litellm", ratio, ">= 0.90", passed))
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=2)
    sys.exit(asyncio.run(main(parser.parse_args())))
