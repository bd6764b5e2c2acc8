"""The seams that keep calls pointing down: the state's callbacks, the engine's user-code runner,
and configure()'s hooks, each exercised with a fake on the other side."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import scenario
from scenario import settings as settings_module
from scenario.concurrency.rate_limits import get_rate_limits, set_rate_limits
from scenario.engine.loop import ScenarioEngine
from scenario.engine.state import ScenarioState
from scenario.spec import build_spec
from tests.helpers.agents import EchoAgent


# -- the state: plain data plus callbacks --------------------------------------------------------
def test_the_state_tells_its_owner_about_every_append_and_cut():
    appended: list[dict] = []
    cuts: list[int] = []
    state = ScenarioState(description="d", thread_id="t", on_append=appended.append, on_rollback=cuts.append)
    for text in ("a", "b", "c"):
        state.add_message({"role": "user", "content": text})
    removed = state.rollback_messages_to(1)
    assert [m["content"] for m in appended] == ["a", "b", "c"]
    assert [m["content"] for m in removed] == ["b", "c"] and cuts == [1]
    state.rollback_messages_to(10)  # past the end: nothing removed, the cut is where the conversation ends
    assert cuts == [1, 1] and len(state.messages) == 1


def test_a_state_without_an_owner_works_alone():
    state = ScenarioState(description="d", thread_id="t")
    state.add_message({"role": "user", "content": "hi"})
    assert state.rollback_messages_to(0) == [{"role": "user", "content": "hi"}]
    assert state.criteria == [] and state.config.max_turns == scenario.configure().max_turns


def test_the_state_reads_criteria_and_config_from_its_spec():
    spec = build_spec(name="n", description="d", max_turns=4, cache_key="k",
                      agents=[EchoAgent(), scenario.JudgeAgent(model="m", criteria=["polite", "brief"])],
                      script=[scenario.user("hi"), scenario.judge()])
    state = ScenarioState(description="d", thread_id="t", spec=spec)
    assert state.criteria == ["polite", "brief"]
    assert (state.config.max_turns, state.config.cache_key) == (4, "k")


@pytest.mark.asyncio
async def test_a_rollback_inside_a_run_shows_the_agent_only_what_is_left():
    seen: list[list[str]] = []

    class Remembers(scenario.AgentAdapter):
        async def call(self, input: scenario.AgentInput) -> str:
            seen.append([m["content"] for m in input.new_messages])
            return "ok"

    def forget_first_exchange(state: scenario.ScenarioState) -> None:
        state.rollback_messages_to(0)

    result = await scenario.arun(name="cut", description="d", agents=[Remembers()], script=[
        scenario.user("one"), scenario.agent(), forget_first_exchange, scenario.user("two"), scenario.agent(),
        scenario.succeed(),
    ])
    assert result.success
    assert seen == [["one"], ["two"]]
    assert [m["content"] for m in result.messages] == ["two", "ok"]


# -- the engine: user code goes where the door says ----------------------------------------------
class FakeRunner:
    """Stands in for run's RunThread: runs user code inline and records what it was handed."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def call(self, fn: Any, *args: Any) -> Any:
        self.calls.append(getattr(fn, "__name__", type(fn).__name__))
        value = fn(*args)
        if hasattr(value, "__await__"):
            value = await value
        return value


@pytest.mark.asyncio
async def test_the_engine_hands_user_code_to_the_runner_it_is_given():
    def check_step(state: scenario.ScenarioState) -> None:
        assert state.last_agent_message() == "echo: hi"

    spec = build_spec(name="n", description="d", agents=[EchoAgent()],
                      script=[scenario.user("hi"), scenario.agent(), check_step, scenario.succeed()])
    runner = FakeRunner()
    result = await ScenarioEngine(spec, user_thread=runner).execute()
    assert result.success, result.reasoning
    assert runner.calls == ["_invoke_here", "check_step"]  # the agent under test, then the step


# -- configure(): values flow down through hooks --------------------------------------------------
@pytest.fixture
def hooks():
    before = list(settings_module._hooks)
    yield settings_module._hooks
    settings_module._hooks[:] = before


def test_configure_calls_hooks_with_what_was_given(hooks):
    heard: list[dict] = []
    settings_module.on_configure(lambda current, given: heard.append(dict(given)))
    heard.clear()  # anything configured before (the test fixture's retry policy) was replayed
    scenario.configure(max_turns=5)
    scenario.configure(verbose=True, tracing="off")
    assert heard == [{"max_turns": 5}, {"verbose": True, "tracing": "off"}]


def test_a_hook_registered_late_hears_what_was_configured_before(hooks):
    scenario.configure(max_turns=6, cache_key="late")
    heard: list[tuple[int, dict]] = []
    settings_module.on_configure(lambda current, given: heard.append((current.max_turns, dict(given))))
    ((max_turns, given),) = heard
    assert max_turns == 6 and given["max_turns"] == 6 and given["cache_key"] == "late"


def test_configured_rate_limits_reach_the_limiter_registry():
    try:
        scenario.configure(rate_limits={"openai/*": scenario.RateLimit(requests_per_minute=60)})
        assert get_rate_limits().keys() == ["openai/*"]
    finally:
        set_rate_limits(None)


@pytest.mark.parametrize("rate_limits, message", [
    (["openai/*"], "expected a dict"),
    ({"": scenario.RateLimit(requests_per_minute=1)}, "model key '' is not allowed"),
    ({"openai/*": {"requests_per_minute": 60}}, "must be a scenario.RateLimit"),
])
def test_bad_rate_limits_are_rejected_before_anything_is_applied(rate_limits, message):
    before = scenario.configure().max_turns
    with pytest.raises(scenario.ScenarioConfigError, match=message):
        scenario.configure(max_turns=before + 1, rate_limits=rate_limits)
    assert scenario.configure().max_turns == before
    assert len(get_rate_limits()) == 0


def test_hooks_run_outside_the_settings_lock(hooks):
    # A hook may read the settings or call configure's readers without deadlocking.
    done = threading.Event()
    settings_module.on_configure(lambda current, given: (scenario.configure(), done.set()))
    scenario.configure(max_turns=3)
    assert done.is_set()
