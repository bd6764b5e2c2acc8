"""Worker loops know their own tasks (no scan of every task in the process), and what user code
leaves running on a run's loop is cancelled when the run ends."""

from __future__ import annotations

import asyncio

import pytest

import scenario
from scenario.runtime import worker_loop
from scenario.runtime.event_loops import TaskTracker, drain, loop_tasks, new_worker_loop
from tests.helpers.agents import EchoAgent


def test_a_worker_loop_lists_the_tasks_made_on_it_however_they_were_made():
    loop = new_worker_loop()
    try:
        async def forever():
            await asyncio.Event().wait()

        async def start():
            made = [asyncio.create_task(forever()), asyncio.ensure_future(forever())]
            gathered = asyncio.gather(forever())
            done = asyncio.create_task(asyncio.sleep(0))
            await done
            return made, gathered

        made, gathered = loop.run_until_complete(start())
        pending = loop_tasks(loop)
        assert set(made) <= set(pending) and len(pending) == 3  # the gathered child too; not the finished one
        assert isinstance(loop.get_task_factory(), TaskTracker)
        drain(loop)
        assert loop_tasks(loop) == [] and all(task.cancelled() for task in made) and gathered.done()
    finally:
        loop.close()


def test_with_a_task_factory_of_the_users_own_the_tasks_are_still_found():
    loop = new_worker_loop()
    try:
        loop.set_task_factory(lambda loop, coro, **kwargs: asyncio.Task(coro, loop=loop, **kwargs))

        async def start():
            return asyncio.create_task(asyncio.Event().wait())

        task = loop.run_until_complete(start())
        assert loop_tasks(loop) == [task]
        assert not worker_loop._is_pristine(loop)
        drain(loop)
        assert task.cancelled()
    finally:
        loop.close()


def test_a_loop_is_kept_for_the_next_run_only_when_nothing_is_left_on_it():
    loop = new_worker_loop()
    try:
        assert worker_loop._is_pristine(loop)

        async def leave_a_task():
            asyncio.create_task(asyncio.Event().wait())

        loop.run_until_complete(leave_a_task())
        assert not worker_loop._is_pristine(loop)
        drain(loop)
        assert worker_loop._is_pristine(loop)
    finally:
        loop.close()


class LeavesATaskRunning(EchoAgent):
    """An agent that starts background work on its loop and never waits for it."""

    def __init__(self):
        super().__init__()
        self.background: list[asyncio.Task] = []
        self.cancelled = 0

    async def call(self, input):
        async def heartbeat():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise

        self.background.append(asyncio.create_task(heartbeat()))
        return await super().call(input)


@pytest.mark.asyncio
@pytest.mark.parametrize("library_agents", [True, False], ids=["autopilot", "scripted"])
async def test_background_tasks_the_agent_leaves_are_cancelled_when_run_returns(configured, library_agents):
    agent = LeavesATaskRunning()
    if library_agents:  # the engine here, the agent on the run's thread (RunThread)
        agents = [agent, scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=["The agent answers"])]
        result = await scenario.run(name="bg", description="d", agents=agents)
    else:  # the whole engine on the run's loop (run_on_worker_loop)
        result = await scenario.run(name="bg", description="d", agents=[agent],
                                    script=[scenario.user("hi"), scenario.agent(), scenario.user("again"),
                                            scenario.agent(), scenario.succeed()])
    assert result.success
    assert len(agent.background) == 2
    assert agent.cancelled == 2 and all(task.cancelled() for task in agent.background)
