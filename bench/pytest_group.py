"""Benchmark: a pytest-asyncio-concurrent group of 20 scenario tests vs one such test.

Each test runs one scenario with 4 model calls (2 user-simulator turns, 2 judge turns) against
the offline mock model server answering every call after 0.5 s. The group should cost about the
same wall time as a single test: target ratio <= 1.3.

The tests run in a real pytest session (a subprocess, with this package's plugin loaded by its
entry point) next to a ``@pytest.mark.asyncio`` test, which is the mix that used to crash. A
conftest hook times each group; both measurements come from the same session, side by side,
for ``scenario.run`` and for ``scenario.arun``, repeated (``--repeats``, default 3) with the
median ratio reported, because a shared 2-core machine makes single measurements noisy.

Run: ``.venv/bin/python -m bench.pytest_group [--tests 20] [--latency 0.5] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

CONFTEST = '''
import json, os, time
import pytest
import scenario

_TIMES = {}


@pytest.fixture(autouse=True)
def _configure():
    scenario.configure(default_model=scenario.ModelConfig(
        model="openai/gpt-4o-mini", api_base=os.environ["BENCH_BASE_URL"], api_key="mock", timeout=30))


@pytest.hookimpl(wrapper=True, optionalhook=True)
def pytest_runtest_protocol_async_group(group, nextgroup):
    started = time.perf_counter()
    try:
        return (yield)
    finally:
        _TIMES[group.name] = time.perf_counter() - started


def pytest_sessionfinish(session):
    with open(os.environ["BENCH_TIMES"], "w") as handle:
        json.dump(_TIMES, handle)
'''

MODULE_HEAD = '''
import pytest
import scenario


class Agent(scenario.AgentAdapter):
    async def call(self, input):
        return "Happy to help with: " + input.last_new_user_message_str()


async def one_scenario(executor, name):
    result = await executor(
        name=name,
        description="A customer asks where their parcel is.",
        agents=[Agent(), scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=["The agent offers help"])],
    )
    assert result.success, result.reasoning
    return result


@pytest.mark.asyncio
async def test_plain_pytest_asyncio_first():
    await one_scenario(scenario.arun, "plain")


@pytest.mark.asyncio_concurrent(group="warmup")
async def test_warmup():
    await one_scenario(scenario.run, "warmup")
'''

TEST_TEMPLATE = '''

@pytest.mark.asyncio_concurrent(group="{group}")
async def test_{group}_{index}():
    await one_scenario(scenario.{executor}, "{group}-{index}")
'''


def build_module(tests: int, repeats: int) -> str:
    parts = [MODULE_HEAD]
    for repeat in range(repeats):
        for executor in ("run", "arun"):
            parts.append(TEST_TEMPLATE.format(group=f"one_{executor}_{repeat}", index=0, executor=executor))
            for index in range(tests):
                parts.append(
                    TEST_TEMPLATE.format(group=f"many_{executor}_{repeat}", index=index, executor=executor)
                )
    return "".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=20, help="tests in the concurrent group (default 20)")
    parser.add_argument("--latency", type=float, default=0.5, help="mock model latency per call, seconds")
    parser.add_argument("--repeats", type=int, default=3, help="measure each pair this many times; report the median")
    args = parser.parse_args()

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from scenario.testing import MockLLMServer

    with MockLLMServer(latency=args.latency) as server, tempfile.TemporaryDirectory() as workdir:
        with open(os.path.join(workdir, "conftest.py"), "w") as handle:
            handle.write(textwrap.dedent(CONFTEST))
        with open(os.path.join(workdir, "test_bench_group.py"), "w") as handle:
            handle.write(build_module(args.tests, args.repeats))
        with open(os.path.join(workdir, "pytest.ini"), "w") as handle:
            handle.write("[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n")
        times_path = os.path.join(workdir, "times.json")
        env = dict(os.environ, BENCH_BASE_URL=server.base_url, BENCH_TIMES=times_path)
        completed = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--scenario-report", "report.json"],
            cwd=workdir, env=env, capture_output=True, text=True,
        )
        if completed.returncode != 0:
            print(completed.stdout[-4000:], completed.stderr[-2000:], sep="\n")
            print(f"pytest exited with {completed.returncode}")
            return 1
        with open(times_path) as handle:
            times = {name.split("[", 1)[1].rstrip("]"): seconds for name, seconds in json.load(handle).items()}
        with open(os.path.join(workdir, "report.json")) as handle:
            report = json.load(handle)
            total = report["total"]
            if os.environ.get("BENCH_DEBUG"):
                for row in report["tests"]:
                    print(row["nodeid"], round(row["duration_s"], 2))

    print(
        f"pytest-asyncio-concurrent group: {args.tests} scenario tests vs 1, "
        f"4 model calls each at {args.latency:g} s (one session, after a pytest-asyncio test)"
    )
    worst = 0.0
    for executor in ("run", "arun"):
        pairs = [(times[f"one_{executor}_{r}"], times[f"many_{executor}_{r}"]) for r in range(args.repeats)]
        ratios = sorted(many / one for one, many in pairs)
        ratio = statistics.median(ratios)
        worst = max(worst, ratio)
        one = statistics.median(p[0] for p in pairs)
        many = statistics.median(p[1] for p in pairs)
        spread = ", ".join(f"{r:.2f}" for r in ratios)
        print(
            f"  scenario.{executor:<4}  1 test {one:5.2f} s   {args.tests} tests {many:5.2f} s   "
            f"ratio {ratio:.2f}x (median of {args.repeats}: {spread})"
        )
    print(f"  {total['scenarios']} scenario runs, {total['model_calls']} model calls, summary cost ${total['cost_usd']:.6f}")
    print(f"worst ratio {worst:.2f}x (target <= 1.3x): {'ok' if worst <= 1.3 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
