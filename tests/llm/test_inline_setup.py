"""litellm's synchronous set-up runs on the model loop for providers where it does no I/O, and on
the model loop's threads otherwise (issue 12)."""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading
import warnings

import pytest

import scenario
from scenario.llm.model_loop import INLINE_SETUP_ENV, ModelLoop, litellm_module, setup_may_run_inline
from tests.helpers.agents import EchoAgent

pytestmark = pytest.mark.asyncio


@pytest.fixture
def setup_threads(monkeypatch):
    """The names of the threads litellm's synchronous ``completion()`` ran on, one per call."""
    import litellm.main

    seen: list[str] = []
    original = litellm.main.completion

    def spy(*args, **kwargs):
        seen.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(litellm.main, "completion", spy)
    return seen


def team():
    return [EchoAgent(), scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=["The agent answers"])]


@pytest.mark.parametrize("door", ["run", "arun"])
async def test_an_openai_compatible_call_sets_up_on_the_model_loop(configured, setup_threads, door):
    result = await getattr(scenario, door)(name="inline", description="d", agents=team())
    assert result.success and result.usage.calls == 4
    assert setup_threads == ["scenario-model-loop"] * 4


async def test_a_user_callback_does_not_move_the_set_up_nor_its_pre_call_hook(configured, setup_threads,
                                                                               monkeypatch):
    # litellm runs pre-call hooks on the loop in its own async path, with or without us.
    from litellm.integrations.custom_logger import CustomLogger

    pre_call_threads: list[str] = []

    class Hook(CustomLogger):
        def log_pre_api_call(self, model, messages, kwargs):
            pre_call_threads.append(threading.current_thread().name)

    monkeypatch.setattr(litellm_module(), "callbacks", [Hook()])
    result = await scenario.arun(name="hooked", description="d", agents=team())
    assert result.success
    assert setup_threads == ["scenario-model-loop"] * 4
    assert pre_call_threads == ["scenario-model-loop"] * 4


async def test_with_a_secret_manager_the_set_up_goes_to_a_thread(configured, setup_threads, monkeypatch):
    # Keys may then be fetched over the network inside the set-up: it must not stall the model loop.
    monkeypatch.setattr(litellm_module(), "secret_manager_client", object())
    assert not setup_may_run_inline({"model": "openai/gpt-4o-mini"})
    monkeypatch.setattr(litellm_module(), "secret_manager_client", None)
    monkeypatch.setattr(litellm_module(), "_key_management_system", "aws_secret_manager")
    assert not setup_may_run_inline({"model": "openai/gpt-4o-mini"})


async def test_the_environment_switch_sends_every_set_up_to_a_thread(configured, setup_threads, monkeypatch):
    monkeypatch.setenv(INLINE_SETUP_ENV, "0")
    result = await scenario.arun(name="off", description="d", agents=team())
    assert result.success
    assert len(setup_threads) == 4 and all(name.startswith("scenario-model-io") for name in setup_threads)


@pytest.mark.parametrize(
    ("kwargs", "inline"),
    [
        ({"model": "openai/gpt-4o-mini"}, True),
        ({"model": "gpt-4o-mini"}, True),  # litellm infers openai
        ({"model": "anthropic/claude-3-5-sonnet-20241022"}, True),
        ({"model": "my-model", "custom_llm_provider": "openai", "api_base": "http://127.0.0.1:1/v1"}, True),
        ({"model": "bedrock/anthropic.claude-3-sonnet-20240229-v1:0"}, False),  # may fetch AWS credentials
        ({"model": "vertex_ai/gemini-1.5-pro"}, False),  # may refresh a Google token
        ({"model": "azure/my-deployment"}, False),  # may call an Azure AD token provider
        ({"model": "no-such-provider/x"}, False),  # litellm cannot resolve it: keep litellm's own way
    ],
)
async def test_which_providers_set_up_inline(kwargs, inline):
    litellm_module()
    assert setup_may_run_inline(kwargs) is inline


async def test_only_the_first_job_of_the_calls_own_task_runs_inline():
    owner = ModelLoop()

    def thread_name() -> str:
        return threading.current_thread().name

    async def spawned() -> str:  # a task the call starts: it sees the permit, but is not the call
        return await asyncio.get_running_loop().run_in_executor(None, thread_name)

    async def call() -> tuple[str, str, str]:
        loop = asyncio.get_running_loop()
        first = await loop.run_in_executor(None, thread_name)  # litellm's completion()
        child = await asyncio.create_task(spawned())
        second = await loop.run_in_executor(None, thread_name)  # anything after it (a sync hook)
        return first, child, second

    try:
        first, child, second = await owner.run(call(), 10, setup_inline=True)
        assert first == "scenario-model-loop"
        assert child.startswith("scenario-model-io") and second.startswith("scenario-model-io")
        first, _, _ = await owner.run(call(), 10)  # no permission: litellm's own way
        assert first.startswith("scenario-model-io")
    finally:
        owner.close()


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "on-a-thread"])
async def test_a_request_a_cancelled_call_never_awaited_is_closed_without_a_warning(inline):
    """litellm's ``completion()`` returns the request coroutine that ``acompletion`` awaits next;
    a call cancelled just after the set-up (a run's timeout) must not leave it to be collected
    with "coroutine ... was never awaited"."""
    owner = ModelLoop()
    requests = []

    async def request() -> str:
        return "response"

    async def call() -> str:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def completion():  # the set-up: the call is cancelled as it returns its request
            made = request()
            requests.append(made)
            loop.call_soon_threadsafe(task.cancel)
            return made

        made = await loop.run_in_executor(None, completion)
        return await made

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(asyncio.CancelledError):
                await owner.run(call(), 10, setup_inline=inline)
            assert owner.submit(asyncio.sleep(0.05)).result(5) is None  # the loop has settled the call
            assert len(requests) == 1
            assert inspect.getcoroutinestate(requests[0]) == inspect.CORO_CLOSED
            requests.clear()
            gc.collect()
        assert not [w for w in caught if "never awaited" in str(w.message)]
    finally:
        owner.close()


async def test_a_request_the_call_awaited_is_left_alone():
    owner = ModelLoop()

    async def request() -> str:
        return "response"

    async def call() -> str:
        made = await asyncio.get_running_loop().run_in_executor(None, request)
        return await made

    try:
        assert await owner.run(call(), 10, setup_inline=True) == "response"
        assert await owner.run(call(), 10) == "response"
    finally:
        owner.close()
