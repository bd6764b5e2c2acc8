"""Past one core: the same CPU-bound batch with processes=1 and processes=2.

1,000 autopilot runs (4 calls each) against the mock model at 0.1 s per call, concurrency 200:
one process is CPU-bound on litellm (several ms of CPU per call). ``run_batch(processes=2)``
forks two workers that each take half the runs, half the concurrency and half of every rate
limit. Reported: the speed-up (time with 1 process / time with 2) per executor. This machine has
2 cores and the mock server needs one of them part of the time, so 2x is out of reach; the number
is what it is.

    .venv/bin/python -m bench.batch_processes [--runs 1000] [--concurrency 200] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from bench.batch_common import autopilot_spec, configure_library, measured, mock_server, warm_up


async def timed(runs: int, concurrency: int, executor: str, processes: int) -> float:
    import scenario

    with measured() as m:
        result = await scenario.run_batch([autopilot_spec()], runs=runs, executor=executor,
                                          max_concurrency=concurrency, processes=processes)
    assert result.passed_runs == runs, result.summary()
    return m.wall


async def main(args: argparse.Namespace) -> int:
    with mock_server(latency=args.latency) as url:
        configure_library(url)
        await warm_up(url)
        best: dict = {}
        for _ in range(args.rounds):
            for executor in ("loop", "thread"):
                for processes in (1, 2):
                    wall = await timed(args.runs, args.concurrency, executor, processes)
                    key = (executor, processes)
                    best[key] = min(best.get(key, 1e9), wall)
    print(f"processes: {args.runs} runs x 4 calls, concurrency {args.concurrency}, mock latency {args.latency}s, "
          f"{os.cpu_count()} CPUs (best of {args.rounds})")
    for executor in ("loop", "thread"):
        one, two = best[(executor, 1)], best[(executor, 2)]
        print(f"processes {executor}: 1 process {one:.1f}s, 2 processes {two:.1f}s; speed-up {one / two:.2f}x (reported)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=1)
    sys.exit(asyncio.run(main(parser.parse_args())))
