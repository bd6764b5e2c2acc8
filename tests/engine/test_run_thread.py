"""`run` keeps the engine and the library's own agents on the caller's loop and sends the run's
user code (agent under test, script steps, callbacks) to the run's own thread and loop."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

import scenario
from scenario.llm import client as models
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.asyncio

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


class WhereAgent(scenario.AgentAdapter):
    """Records the loop, thread and contextvar of every call."""

    def __init__(self):
        self.loops, self.threads, self.context = [], [], []

    async def call(self, input):
        self.loops.append(asyncio.get_running_loop())
        self.threads.append(threading.get_ident())
        self.context.append(request_id.get())
        return f"reply {len(input.messages)}"


def team(agent, criteria="The agent replies"):
    return [agent, scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=[criteria])]


async def test_the_agent_keeps_one_loop_of_its_own_for_the_whole_run(configured):
    agent = WhereAgent()
    here = asyncio.get_running_loop()
    first = await scenario.run(name="a", description="d", agents=team(agent))
    turns_first = len(agent.loops)
    second = await scenario.run(name="b", description="d", agents=team(agent))
    assert first.success and second.success and turns_first >= 2
    run_one, run_two = agent.loops[:turns_first], agent.loops[turns_first:]
    assert len(set(map(id, run_one))) == 1 and len(set(map(id, run_two))) == 1  # one loop per run
    assert run_one[0] is not run_two[0] and here not in (run_one[0], run_two[0])
    assert run_one[0].is_closed() and run_two[0].is_closed()  # shut down when run returned
    assert threading.get_ident() not in agent.threads


async def test_script_steps_and_callbacks_run_where_the_agent_runs(configured):
    seen = {}

    class Agent(scenario.AgentAdapter):
        async def call(self, input):
            seen.setdefault("agent", set()).add((id(asyncio.get_running_loop()), threading.get_ident()))
            return "ok"

    def sync_step(state):
        seen.setdefault("step", set()).add((id(asyncio.get_running_loop()), threading.get_ident()))

    async def async_step(state):
        seen.setdefault("step", set()).add((id(asyncio.get_running_loop()), threading.get_ident()))

    def on_turn(state):
        seen.setdefault("step", set()).add((id(asyncio.get_running_loop()), threading.get_ident()))

    result = await scenario.run(
        name="s", description="d", agents=team(Agent()),
        script=[scenario.user("hi"), scenario.agent(), sync_step, async_step,
                scenario.proceed(turns=1, on_turn=on_turn), scenario.judge()],
    )
    assert result.success, result.reasoning
    assert len(seen["agent"]) == 1 and seen["step"] == seen["agent"]
    assert next(iter(seen["agent"]))[1] != threading.get_ident()


async def test_the_library_agents_stay_on_the_callers_loop_under_run(configured, monkeypatch):
    """The simulator and judge never wake the run's thread: their model calls start here."""
    threads = []
    original = models.complete

    async def spy(**kwargs):
        threads.append(threading.get_ident())
        return await original(**kwargs)

    monkeypatch.setattr(models, "complete", spy)
    agent = WhereAgent()
    result = await scenario.run(name="l", description="d", agents=team(agent))
    assert result.success and result.usage.calls == len(threads) >= 3
    assert set(threads) == {threading.get_ident()}
    assert set(agent.threads) != {threading.get_ident()}


async def test_a_subclass_overriding_call_is_user_code_and_runs_on_the_runs_thread(configured):
    where = []

    class MySimulator(scenario.UserSimulatorAgent):
        async def call(self, input):
            where.append(threading.get_ident())
            return await super().call(input)

    agent = WhereAgent()
    result = await scenario.run(name="o", description="d",
                                agents=[agent, MySimulator(), scenario.JudgeAgent(criteria=["The agent replies"])])
    assert result.success
    assert set(where) == set(agent.threads) and threading.get_ident() not in where


async def test_callers_contextvars_reach_user_code_with_library_agents_present(configured):
    agent = WhereAgent()
    request_id.set("req-9")
    result = await scenario.run(name="c", description="d", agents=team(agent))
    assert result.success and agent.context and set(agent.context) == {"req-9"}


async def test_blocking_sync_agents_in_autopilot_still_run_in_parallel(configured):
    class Blocking(scenario.AgentAdapter):
        def call(self, input):
            time.sleep(0.3)
            return "done"

    started = time.perf_counter()
    results = await asyncio.gather(*(
        scenario.run(name=f"b{i}", description="d", agents=team(Blocking()), max_turns=1) for i in range(10)
    ))
    elapsed = time.perf_counter() - started
    assert all(r.success for r in results), [r.reasoning for r in results if not r.success][:2]
    assert elapsed < 0.3 * 10 / 2  # far from serial; generous for a loaded 2-core CI box


async def test_cancelling_run_cancels_the_agent_and_closes_its_loop(configured):
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

    task = asyncio.create_task(scenario.run(name="c", description="d", agents=team(Forever())))
    assert await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen.get("cancelled") is True
    assert seen["loop"].is_closed()


async def test_a_timeout_fires_on_time_even_while_a_sync_agent_blocks(configured):
    class Slow(scenario.AgentAdapter):
        def call(self, input):
            time.sleep(1.0)
            return "late"

    started = time.perf_counter()
    result = await scenario.run(name="t", description="d", agents=team(Slow()), timeout=0.3)
    assert not result.success and "Timed out after 0.3s" in result.reasoning
    assert time.perf_counter() - started < 5


class BlocksUntilReleased(scenario.AgentAdapter):
    """A synchronous agent stuck in a call that returns only when the test releases it."""

    def __init__(self):
        self.release = threading.Event()
        self.loops = []

    def call(self, input):
        try:
            self.loops.append(asyncio.get_running_loop())  # under `run`: the run's own loop
        except RuntimeError:  # under `arun`: a pool thread without a loop
            self.loops.append(None)
        self.release.wait(30)
        return "late"


SCRIPTED = [scenario.user("hi"), scenario.agent(), scenario.succeed()]


@pytest.mark.parametrize("shape", ["autopilot", "scripted"])
async def test_a_timed_out_run_returns_while_its_sync_agent_still_blocks_and_says_so(configured, shape, caplog):
    from scenario.runtime import worker_loop

    agent = BlocksUntilReleased()
    kwargs = dict(agents=team(agent)) if shape == "autopilot" else dict(agents=[agent], script=SCRIPTED)
    started = time.perf_counter()
    try:
        with caplog.at_level("WARNING", logger="scenario.runtime.worker_loop"):
            result = await scenario.run(name="stuck", description="d", timeout=0.3, **kwargs)
        elapsed = time.perf_counter() - started
        # Before: the run waited CANCEL_GRACE (10 s) for a thread that could not stop, or, scripted,
        # ignored its timeout until the agent returned (30 s here).
        assert elapsed < 0.3 + worker_loop.UNBLOCK_GRACE + 3
        assert not result.success and "Timed out after 0.3s" in result.reasoning
        assert isinstance(result.exception, (TimeoutError, asyncio.TimeoutError))
        warning = next(r.getMessage() for r in caplog.records if "'stuck'" in r.getMessage())
        assert "still running on thread scenario-worker" in warning and "has not returned" in warning
        assert agent.loops and not agent.loops[0].is_closed()  # its loop is still held by the call
    finally:
        agent.release.set()
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, wait_until, lambda: agent.loops[0].is_closed())  # closed by its thread


async def test_a_timed_out_run_and_arun_give_the_same_verdict_when_a_sync_agent_blocks(configured):
    verdicts = []
    for door in (scenario.run, scenario.arun):
        agent = BlocksUntilReleased()
        try:
            result = await door(name="stuck", description="d", agents=[agent], script=SCRIPTED, timeout=0.3)
        finally:
            agent.release.set()
        verdicts.append((result.success, result.reasoning, type(result.exception)))
    assert verdicts[0] == verdicts[1]
    assert "Timed out after 0.3s during step 2 (agent)" in verdicts[0][1]


async def test_cancelling_a_run_whose_sync_agent_blocks_returns_without_waiting_for_it(configured, caplog):
    from scenario.runtime import worker_loop

    agent = BlocksUntilReleased()
    try:
        task = asyncio.create_task(scenario.run(name="held", description="d", agents=[agent], script=SCRIPTED))
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, wait_until, lambda: bool(agent.loops))
        started = time.perf_counter()
        task.cancel()
        with caplog.at_level("WARNING", logger="scenario.runtime.worker_loop"), pytest.raises(asyncio.CancelledError):
            await task
        assert time.perf_counter() - started < worker_loop.UNBLOCK_GRACE + 3  # not CANCEL_GRACE (10 s)
        assert any("'held'" in r.getMessage() and "has not returned" in r.getMessage() for r in caplog.records)
    finally:
        agent.release.set()
    assert await asyncio.get_running_loop().run_in_executor(None, wait_until, lambda: agent.loops[0].is_closed())


async def test_a_timed_out_run_whose_user_code_never_got_a_thread_returns_without_a_warning(configured, caplog,
                                                                                             monkeypatch):
    from scenario.runtime import worker_pool

    pool = worker_pool.WorkerPool(1, idle_timeout=0.5)
    monkeypatch.setattr(worker_pool, "_pool", pool)
    gate = threading.Event()
    pool.submit(gate.wait, 30)  # the pool's only thread is busy: the run's user code waits its turn
    agent = WhereAgent()
    try:
        with caplog.at_level("WARNING", logger="scenario.runtime.worker_loop"):
            result = await scenario.run(name="queued", description="d", agents=[agent], script=SCRIPTED, timeout=0.3)
        assert "Timed out after 0.3s" in result.reasoning
        assert not [r for r in caplog.records if "'queued'" in r.getMessage()]  # nothing of it was running
    finally:
        gate.set()
    assert await asyncio.get_running_loop().run_in_executor(None, wait_until, lambda: pool.thread_count() == 0)
    assert agent.loops == []  # the abandoned call never ran once the thread was free
    pool.shutdown()


async def test_a_run_whose_agent_unwinds_slowly_is_still_waited_for(configured, caplog):
    """A responsive loop gets the full grace: async clean-up after a cancellation finishes first."""
    from scenario.runtime import worker_loop

    seen = {}

    class SlowToUnwind(scenario.AgentAdapter):
        async def call(self, input):
            seen["loop"] = asyncio.get_running_loop()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                await asyncio.sleep(worker_loop.UNBLOCK_GRACE + 0.5)  # longer than the unblock grace
                seen["unwound"] = True
                raise

    with caplog.at_level("WARNING", logger="scenario.runtime.worker_loop"):
        result = await scenario.run(name="slow", description="d", agents=[SlowToUnwind()], script=SCRIPTED,
                                    timeout=0.3)
    assert "Timed out after 0.3s" in result.reasoning
    assert seen.get("unwound") is True and seen["loop"].is_closed()  # run returned after the clean-up
    assert not [r for r in caplog.records if "has not returned" in r.getMessage()]


async def test_an_agent_error_on_the_runs_thread_keeps_its_type_and_where(configured):
    class Broken(scenario.AgentAdapter):
        async def call(self, input):
            return {}["choices"]

    result = await scenario.run(name="e", description="d", agents=team(Broken()))
    assert not result.success
    assert result.error is not None and result.error.type == "KeyError"
    assert "agent adapter Broken" in result.error.where


@pytest.mark.parametrize("door", ["run", "arun"])
async def test_a_contextvar_a_script_step_sets_is_seen_by_later_steps_and_the_agent(configured, door):
    # Under arun every piece of user code shares the run's task context; run carries what one
    # call set into the next, so both doors agree.
    tenant: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default="none")
    seen = []

    class TenantAgent(scenario.AgentAdapter):
        async def call(self, input):
            seen.append(("agent", tenant.get()))
            return "ok"

    def pick_tenant(state):
        tenant.set("acme")

    def check_tenant(state):
        seen.append(("step", tenant.get()))

    request_id.set("req-1")
    result = await getattr(scenario, door)(
        name="ctx", description="d", agents=team(TenantAgent()),
        script=[pick_tenant, scenario.user("hi"), scenario.agent(), check_tenant, scenario.succeed()],
    )
    assert result.success, result.reasoning
    assert seen == [("agent", "acme"), ("step", "acme")]
    # run's user code works on copies, so the caller's context is untouched; arun's shares it.
    assert tenant.get() == ("none" if door == "run" else "acme")
