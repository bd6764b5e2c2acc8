"""What distinguishes the two executors, and what they must share."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import threading

import pytest

import scenario
from tests.helpers.agents import EchoAgent

pytestmark = pytest.mark.asyncio

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


class LoopAgent(scenario.AgentAdapter):
    """Records the loop and thread it runs on and a contextvar it sees."""

    def __init__(self):
        self.loops, self.threads, self.context = [], [], []

    async def call(self, input):
        self.loops.append(asyncio.get_running_loop())
        self.threads.append(threading.get_ident())
        self.context.append(request_id.get())
        return "ok"


SCRIPT = [scenario.user("hi"), scenario.agent(), scenario.succeed()]


async def test_arun_runs_on_callers_loop_run_on_fresh_loops():
    agent = LoopAgent()
    here = asyncio.get_running_loop()
    await scenario.arun(name="a", description="d", agents=[agent], script=SCRIPT)
    await scenario.run(name="r", description="d", agents=[agent], script=SCRIPT)
    await scenario.run(name="r", description="d", agents=[agent], script=SCRIPT)
    assert agent.loops[0] is here
    assert agent.loops[1] is not here and agent.loops[2] is not here and agent.loops[1] is not agent.loops[2]
    assert agent.threads[0] == threading.get_ident() != agent.threads[1]
    assert agent.loops[1].is_closed() and agent.loops[2].is_closed()  # shut down after the run


async def test_loop_bound_state_works_under_arun():
    queue: asyncio.Queue = asyncio.Queue()
    await queue.put("from the test's loop")

    class QueueAgent(scenario.AgentAdapter):
        async def call(self, input):
            return await queue.get()

    result = await scenario.arun(name="q", description="d", agents=[QueueAgent()], script=SCRIPT)
    assert result.success and result.messages[1]["content"] == "from the test's loop"


async def test_callers_contextvars_reach_both_executors():
    agent = LoopAgent()
    request_id.set("req-7")
    await scenario.run(name="r", description="d", agents=[agent], script=SCRIPT)
    await scenario.arun(name="a", description="d", agents=[agent], script=SCRIPT)
    assert agent.context == ["req-7", "req-7"]


async def test_many_concurrent_runs_are_truly_concurrent():
    """Blocking sync agents under run overlap in time (they each have a thread)."""
    import time

    class Blocking(scenario.AgentAdapter):
        def call(self, input):
            time.sleep(0.3)
            return "done"

    started = time.perf_counter()
    results = await asyncio.gather(*(scenario.run(name=f"b{i}", description="d", agents=[Blocking()], script=SCRIPT) for i in range(20)))
    elapsed = time.perf_counter() - started
    assert all(r.success for r in results)
    assert elapsed < 0.3 * 20 / 4  # far from serial; generous for a loaded 2-core CI box


async def test_sync_agents_under_arun_do_not_block_the_loop():
    import time

    class Blocking(scenario.AgentAdapter):
        def call(self, input):
            time.sleep(0.3)
            return "done"

    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    task = asyncio.create_task(ticker())
    await scenario.arun(name="b", description="d", agents=[Blocking()], script=SCRIPT)
    task.cancel()
    assert ticks >= 5  # the loop kept running while the agent blocked


async def test_cancelling_run_cancels_worker_and_closes_its_loop():
    started = threading.Event()
    seen = {}

    class Forever(scenario.AgentAdapter):
        async def call(self, input):
            seen["loop"] = asyncio.get_running_loop()
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                seen["cancelled"] = True
                raise

    task = asyncio.create_task(scenario.run(name="c", description="d", agents=[Forever()], script=SCRIPT))
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen.get("cancelled") is True
    assert seen["loop"].is_closed()


async def test_200_concurrent_scenarios_each_executor_no_cross_talk(configured, caplog):
    """Each run sees only its own conversation, thread id and usage."""

    class TaggedAgent(scenario.AgentAdapter):
        def __init__(self, tag):
            self.tag = tag

        async def call(self, input):
            # every message this agent ever sees must belong to its own scenario
            for message in input.messages:
                if message["role"] == "assistant":
                    assert message["content"].startswith(f"[{self.tag}]"), "cross-talk between scenarios"
            return f"[{self.tag}] reply {len(input.messages)}"

    caplog.set_level(logging.ERROR)
    for execute in (scenario.run, scenario.arun):
        results = await asyncio.gather(
            *(
                execute(
                    name=f"s{i}",
                    description=f"Scenario number {i} about topic {i}",
                    agents=[TaggedAgent(i), scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=[f"crit {i}"])],
                )
                for i in range(200)
            )
        )
        assert all(r.success for r in results), [r.reasoning for r in results if not r.success][:3]
        assert len({r.thread_id for r in results}) == 200
        for i, result in enumerate(results):
            assert f"topic {i}" in result.messages[0]["content"]
            assert all(m["content"].startswith(f"[{i}]") for m in result.messages if m["role"] == "assistant")
            assert result.criteria[0].requirement == f"crit {i}"
            assert result.usage.calls == 4
    gc.collect()
    # litellm's own global logging task, left on an earlier test's closed loop, is not ours.
    assert not [r.getMessage() for r in caplog.records
                if "Task was destroyed but it is pending" in r.getMessage() and "litellm" not in r.getMessage()]


async def test_worker_pool_is_shared_and_bounded():
    from scenario.runtime import worker_pool

    pool = worker_pool.get_pool()
    await scenario.run(name="x", description="d", agents=[EchoAgent()], script=SCRIPT)
    assert worker_pool.get_pool() is pool
    assert 4 <= worker_pool.pool_size() <= 512


def _open_sockets() -> int:
    import os

    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/fd"), reason="needs /proc to count sockets")
async def test_sequential_runs_do_not_leak_sockets(configured):
    """Each `run` has its own loop; the library's model calls must not strand a connection per loop."""
    team = lambda: [EchoAgent(), scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=["ok"])]
    await scenario.run(name="warm", description="d", agents=team())
    before = _open_sockets()
    for i in range(60):
        result = await scenario.run(name=f"seq{i}", description="d", agents=team())
        assert result.success
    assert _open_sockets() - before <= 10
