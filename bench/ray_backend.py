"""The Ray backend against in-process and processes=2, side by side in one run.

1. Per-run overhead: scripted runs (no model call, so only the batch machinery is measured) at the
   same concurrency, in-process vs 2 Ray worker actors. Marginal cost per run: the difference
   between a batch of 2N and one of N runs, divided by N, so starting the actors (seconds: each
   imports litellm) is not counted. CPU is the driver's plus the actors' (read from /proc).
2. A CPU-bound batch: autopilot runs (4 model calls each) against the mock model at ~0 latency, on
   one process, on processes=2 and on 2 Ray workers. Reported: the throughput between the first
   and the last finished run (start-up excluded; also the whole wall). The goal of >= 1.7x one
   process needs free cores; this machine has 2, shared with the mock server (its own process).

Ray is an optional extra: run this with the Ray environment (``make test`` builds it)::

    .venv-ray/bin/python -m bench.ray_backend [--runs 400] [--autopilot-runs 600] [--concurrency 100]

Without Ray installed it prints a skip line and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import scenario
from bench.batch_common import EchoAgent, autopilot_spec, configure_library, mock_server, warm_up
from scenario.distributed import Ray


def actor_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of every live ``ray::ScenarioWorker`` process."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if b"ray::ScenarioWorker" not in handle.read():
                    continue
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks
    return found


class ActorCpu:
    """Samples the actors' CPU while a batch runs (they are gone when it returns)."""

    def __init__(self) -> None:
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.last.update(actor_cpu())
            self._stop.wait(0.05)

    def __enter__(self) -> ActorCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def total(self) -> float:
        return sum(self.last.values())


def scripted_spec() -> Any:
    return scenario.Scenario(name="scripted", description="d", agents=[EchoAgent],
                             script=[scenario.user("hi"), scenario.agent(), scenario.succeed()])


async def batch(specs: list[Any], runs: int, concurrency: int, **kwargs: Any) -> tuple[float, float, float, float]:
    """(wall, first-to-last-record seconds, driver cpu, actor cpu) of one batch."""
    stamps: list[float] = []
    cpu0 = time.process_time()
    started = time.perf_counter()
    with ActorCpu() as actors:
        result = await scenario.run_batch(specs, runs=runs, max_concurrency=concurrency, executor="loop",
                                          on_run_finished=lambda r: stamps.append(time.perf_counter()), **kwargs)
    wall = time.perf_counter() - started
    assert result.passed_runs == result.planned, result.summary()
    return wall, stamps[-1] - stamps[0], time.process_time() - cpu0, actors.total


async def main(args: argparse.Namespace) -> int:
    # A local cluster on loopback, not the machine's network address (Ray's own switch, read when
    # Ray is imported; see tests_ray/conftest.py).
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        print("ray_backend: skipped (Ray is not installed here; run it with .venv-ray/bin/python, which make test "
              "builds) (reported)")
        return 0

    scratch = tempfile.mkdtemp(prefix="sbr", dir="/tmp")
    os.environ["HOME"] = scratch  # Ray's ~/.ray files go to the scratch directory
    ray.init(num_cpus=2, _temp_dir=os.path.join(scratch, "t"), include_dashboard=False, logging_level="warning",
             # The workers unpickle helpers from bench.batch_common by reference: ship the package.
             runtime_env={"py_modules": [str(Path(__file__).resolve().parent)],
                          "env_vars": {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}})
    try:
        with mock_server(latency=args.latency) as url:
            configure_library(url)
            await warm_up(url)
            n, c = args.runs, args.concurrency
            specs = [scripted_spec()]
            local_small = await batch(specs, n, c)
            local_big = await batch(specs, 2 * n, c)
            ray_small = await batch(specs, n, c, backend=Ray(workers=2))
            ray_big = await batch(specs, 2 * n, c, backend=Ray(workers=2))
            local_wall = (local_big[0] - local_small[0]) / n * 1000
            local_cpu = (local_big[2] - local_small[2]) / n * 1000
            ray_wall = (ray_big[1] - ray_small[1]) / n * 1000
            ray_cpu = ((ray_big[2] + ray_big[3]) - (ray_small[2] + ray_small[3])) / n * 1000
            print(f"ray overhead: scripted runs, concurrency {c}, marginal per run (2x{n} vs {n} runs)")
            print(f"ray overhead: in-process {local_wall:.2f} ms wall, {local_cpu:.2f} ms CPU per run; "
                  f"2 Ray workers {ray_wall:.2f} ms wall, {ray_cpu:.2f} ms CPU per run (driver + actors); "
                  f"CPU ratio {ray_cpu / max(local_cpu, 1e-9):.1f}x (reported)")
            print(f"ray overhead: starting 2 actors and the batch on them: {ray_small[0] - ray_small[1]:.1f}s "
                  "(reported)")

            autopilot = [autopilot_spec()]
            m, ac = args.autopilot_runs, args.autopilot_concurrency
            one = await batch(autopilot, m, ac)
            two = await batch(autopilot, m, ac, processes=2)
            on_ray = await batch(autopilot, m, ac, backend=Ray(workers=2))
            print(f"ray cpu-bound: {m} autopilot runs x 4 calls, concurrency {ac}, mock latency {args.latency}s, "
                  f"{os.cpu_count()} CPUs; runs/s between the first and last finished run (whole wall in brackets)")

            def rate(sample: tuple[float, float, float, float]) -> str:
                return f"{(m - 1) / sample[1]:.0f} runs/s [{sample[0]:.1f}s]"

            print(f"ray cpu-bound: one process {rate(one)}, processes=2 {rate(two)}, 2 Ray workers {rate(on_ray)}")
            print(f"ray cpu-bound: speed-up over one process: processes=2 {one[1] / two[1]:.2f}x, "
                  f"2 Ray workers {one[1] / on_ray[1]:.2f}x (goal >= 1.7x with free cores; reported)")
    finally:
        ray.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--autopilot-runs", type=int, default=600)
    parser.add_argument("--autopilot-concurrency", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.0)
    sys.exit(asyncio.run(main(parser.parse_args())))
