"""Core targets, measured in one run:

* 50 concurrent autopilot scenarios (plain ``asyncio.gather`` of ``scenario.run`` / of
  ``scenario.arun``, no batch object), 4 model calls each, mock at 0.5 s per call: wall within
  1.15x of the critical path (2 s).
* ``import scenario`` adds <= 0.5 s to interpreter start (best of 7, fresh interpreters).
* A scripted scenario with no model calls costs <= 1 ms of CPU in the engine (sequential, per
  executor).

For context it also prints the same 200 calls made by 50 bare ``litellm.acompletion`` workers:
litellm's own CPU per call puts a floor under the concurrent-autopilot ratio.

    .venv/bin/python bench/core_targets.py
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch_common import REPO, EchoAgent, agents_for_autopilot, bare_litellm, configure_library, measured, mock_server, ratio_line, warm_up  # noqa: E402


def import_cost(repeats: int = 7) -> float:
    env = dict(os.environ, PYTHONPATH=str(REPO))

    def best(code: str) -> float:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=str(REPO))
            times.append(time.perf_counter() - started)
        return min(times)

    return best("import scenario") - best("pass")


async def concurrent_autopilot(fn_name: str, count: int) -> float:
    import scenario

    fn = getattr(scenario, fn_name)
    with measured() as m:
        results = await asyncio.gather(*(
            fn(name=f"c{i}", description="A customer asks about a parcel.", agents=agents_for_autopilot())
            for i in range(count)
        ))
    assert all(r.success for r in results) and all(r.usage.calls == 4 for r in results)
    return m.wall


async def scripted_cpu(fn_name: str, runs: int) -> float:
    import scenario

    fn = getattr(scenario, fn_name)
    for _ in range(50):
        await fn(name="s", description="d", agents=[EchoAgent()], script=[scenario.user("hi"), scenario.agent(),
                                                                          scenario.succeed()])
    with measured() as m:
        for _ in range(runs):
            result = await fn(name="s", description="d", agents=[EchoAgent()],
                              script=[scenario.user("hi"), scenario.agent(), scenario.succeed()])
    assert result.success
    return 1000 * m.cpu / runs


async def main() -> int:
    ok = True
    cost = import_cost()
    ok &= cost <= 0.5
    print(ratio_line("import scenario added to interpreter start (s)", cost, "<= 0.5", cost <= 0.5))

    for fn_name in ("run", "arun"):
        ms = await scripted_cpu(fn_name, 1000)
        ok &= ms <= 1.0
        print(ratio_line(f"scripted scenario CPU per run, {fn_name} (ms)", ms, "<= 1.0", ms <= 1.0))

    latency, calls = 0.5, 4
    with mock_server(latency=latency) as url:
        configure_library(url)
        await warm_up(url)
        floor = min([(await bare_litellm(url, 50 * calls, 50)).wall for _ in range(2)])
        print(f"50 workers x {calls} sequential bare litellm calls (the floor): wall / critical path ({floor:.2f}s): "
              f"{floor / (calls * latency):.3f} (reference)")
        for fn_name in ("run", "arun"):
            wall = min([await concurrent_autopilot(fn_name, 50) for _ in range(2)])
            ratio = wall / (calls * latency)
            ok &= ratio <= 1.15
            print(ratio_line(f"50 concurrent autopilot scenarios via {fn_name}: wall / critical path ({wall:.2f}s)",
                             ratio, "<= 1.15", ratio <= 1.15))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
