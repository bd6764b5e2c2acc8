"""The model loop: every litellm coroutine runs there; callers on any loop await it safely."""

from __future__ import annotations

import asyncio
import threading

import pytest

from scenario.llm.client import ModelLoop

pytestmark = pytest.mark.asyncio


@pytest.fixture
def model_loop():
    loop = ModelLoop()
    yield loop
    loop.close()


async def _where() -> int:
    await asyncio.sleep(0)
    return threading.get_ident()


async def test_calls_run_on_the_model_loop_thread_and_return_to_the_caller(model_loop):
    results = await asyncio.gather(*(model_loop.run(_where()) for _ in range(20)))
    assert len(set(results)) == 1 and results[0] != threading.get_ident()
    assert results[0] == model_loop._thread.ident


async def test_callers_on_many_threads_each_get_their_own_answer(model_loop):
    async def echo(value: int) -> int:
        await asyncio.sleep(0.001 * (value % 3))
        return value

    answers: dict = {}

    def caller(index: int) -> None:
        async def go() -> list:
            return [await model_loop.run(echo(index * 100 + i)) for i in range(5)]

        answers[index] = asyncio.run(go())

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert answers == {i: [i * 100 + k for k in range(5)] for i in range(10)}


async def test_exceptions_reach_the_caller_with_their_type(model_loop):
    async def boom() -> None:
        raise KeyError("choices")

    with pytest.raises(KeyError, match="choices"):
        await model_loop.run(boom())


async def test_a_call_past_its_timeout_raises_here_and_is_cancelled_there(model_loop):
    cancelled = threading.Event()

    async def never() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(asyncio.TimeoutError):
        await model_loop.run(never(), timeout=0.05)
    assert await asyncio.get_running_loop().run_in_executor(None, cancelled.wait, 5)


async def test_cancelling_the_caller_cancels_the_call_on_the_model_loop(model_loop):
    started, cancelled = threading.Event(), threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = asyncio.create_task(model_loop.run(forever()))
    assert await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.get_running_loop().run_in_executor(None, cancelled.wait, 5)


async def test_closing_the_model_loop_releases_every_waiting_caller(model_loop):
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(60)

    waiting = [asyncio.create_task(model_loop.run(forever())) for _ in range(3)]
    assert await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
    await asyncio.get_running_loop().run_in_executor(None, model_loop.close)
    done, pending = await asyncio.wait(waiting, timeout=5)
    assert not pending
    assert all(task.cancelled() for task in done)


async def test_completions_of_one_pass_wake_their_caller_loop_once(model_loop):
    """50 calls that finish together come back in one wake-up of this loop, not 50."""
    here = asyncio.get_running_loop()
    gate = asyncio.Event()
    arrived = 0

    async def wait_for_gate() -> int:
        nonlocal arrived
        arrived += 1
        await gate.wait()
        return 1

    calls = [asyncio.ensure_future(model_loop.run(wait_for_gate())) for _ in range(50)]
    while arrived < 50:
        await asyncio.sleep(0.01)
    wakeups = 0
    original = here.call_soon_threadsafe

    def counting(*args, **kwargs):
        nonlocal wakeups
        wakeups += 1
        return original(*args, **kwargs)

    here.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        model_loop.loop().call_soon_threadsafe(gate.set)
        assert sum(await asyncio.gather(*calls)) == 50
    finally:
        del here.call_soon_threadsafe
    assert wakeups == 1


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
async def test_after_fork_the_child_gets_a_fresh_model_loop_of_its_own():
    import os
    import select
    import signal

    from scenario.llm import model_loop as owner

    parent_loop = owner.model_loop
    await parent_loop.run(asyncio.sleep(0))  # the parent's loop thread exists; the child will not have it
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its answer goes through the pipe, it never returns into pytest
        code = 1
        try:
            owner.reset_after_fork()
            fresh = owner.model_loop
            answer = asyncio.run(asyncio.wait_for(fresh.run(_where()), 10))  # a dead loop would never answer
            code = 0 if fresh is not parent_loop and answer == fresh._thread.ident else 2
        finally:
            os.write(write, bytes([code]))
            os._exit(code)
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], 30)
        assert ready, "the child did not answer within 30 s"
        assert os.read(read, 1) == bytes([0])
    finally:
        os.close(read)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert owner.model_loop is parent_loop  # the parent's is untouched
