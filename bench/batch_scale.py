"""Scale: 1,000 autopilot runs against a mock model at 0.1 s per call, concurrency 200.

Goal: the batch completes model calls at >= 90% of the throughput bare ``litellm.acompletion``
reaches on one loop with the same concurrency against the same server, under both executors.
The mock runs in its own process; every measurement is taken in this one run, interleaved, and
reported as a ratio, because the machine is shared and absolute numbers drift.

    .venv/bin/python bench/batch_scale.py [--runs 1000] [--concurrency 200] [--latency 0.1] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch_common import agents_for_autopilot, bare_litellm, configure_library, measured, mock_server, ratio_line, warm_up  # noqa: E402

CALLS_PER_RUN = 4  # user, judge (continue), user, judge (finish): the agent under test answers locally


async def batch_throughput(runs: int, concurrency: int, executor: str) -> tuple[float, float]:
    import scenario

    specs = [scenario.Scenario(name="scale", description="A customer asks about a parcel.",
                               agents=agents_for_autopilot())]
    with measured() as m:
        result = await scenario.run_batch(specs, runs=runs, executor=executor, max_concurrency=concurrency)
    if result.passed_runs != runs or result.usage.calls != runs * CALLS_PER_RUN:
        raise SystemExit(f"{executor}: expected {runs} passing runs with {runs * CALLS_PER_RUN} calls, got "
                         f"{result.passed_runs} passing, {result.usage.calls} calls:\n{result.summary()}")
    return result.usage.calls / m.wall, 1000 * m.cpu / result.usage.calls


async def main(args: argparse.Namespace) -> int:
    calls = args.runs * CALLS_PER_RUN
    with mock_server(latency=args.latency) as url:
        configure_library(url)
        await warm_up(url)
        best = {"bare": 0.0, "thread": 0.0, "loop": 0.0}
        cpu = {"bare": 0.0, "thread": 0.0, "loop": 0.0}
        for _ in range(args.rounds):
            bare = await bare_litellm(url, calls, args.concurrency)
            rate = calls / bare.wall
            if rate > best["bare"]:
                best["bare"], cpu["bare"] = rate, 1000 * bare.cpu / calls
            for executor in ("thread", "loop"):
                rate, per_call = await batch_throughput(args.runs, args.concurrency, executor)
                if rate > best[executor]:
                    best[executor], cpu[executor] = rate, per_call
    print(f"scale: {args.runs} runs x {CALLS_PER_RUN} calls, concurrency {args.concurrency}, mock latency {args.latency}s")
    for name, rate in best.items():
        print(f"  {name:6}: {rate:7.1f} calls/s, {cpu[name]:.2f} ms CPU per call")
    ok = True
    for executor in ("thread", "loop"):
        ratio = best[executor] / best["bare"]
        passed = ratio >= 0.9
        ok = ok and passed
        print(ratio_line(f"scale {executor} throughput / bare litellm", ratio, ">= 0.90", passed))
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=1)
    sys.exit(asyncio.run(main(parser.parse_args())))
