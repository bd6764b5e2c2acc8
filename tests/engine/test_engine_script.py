"""Script steps, return types and turn bookkeeping — no model calls, both executors."""

from __future__ import annotations

import pytest

import scenario
from scenario.types import AgentRole
from tests.helpers.agents import EXECUTORS, EchoAgent, RaisingAgent, ReturnsAgent, SyncEchoAgent

pytestmark = pytest.mark.asyncio


@pytest.fixture(params=sorted(EXECUTORS))
def execute(request):
    return EXECUTORS[request.param]


async def test_scripted_user_and_agent_then_succeed(execute):
    agent = EchoAgent()
    result = await execute(
        name="scripted", description="d", agents=[agent],
        script=[scenario.user("hello"), scenario.agent(), scenario.succeed("all good")],
    )
    assert result.success and result.reasoning == "all good"
    assert result.messages == [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "echo: hello"},
    ]
    assert result.total_time > 0 and result.agent_time >= 0
    assert agent.inputs[0].new_messages == [{"role": "user", "content": "hello"}]


async def test_fail_step_and_default_reasonings(execute):
    result = await execute(name="f", description="d", agents=[EchoAgent()], script=[scenario.fail()])
    assert not result.success and result.reasoning == "fail() step reached"
    result = await execute(name="s", description="d", agents=[EchoAgent()], script=[scenario.succeed()])
    assert result.success and result.reasoning == "succeed() step reached"


async def test_script_without_verdict_fails_with_advice(execute):
    result = await execute(name="x", description="d", agents=[EchoAgent()], script=[scenario.user("hi"), scenario.agent()])
    assert not result.success
    assert "ended without a verdict" in result.reasoning


async def test_explicit_agent_content_and_message_step(execute):
    tool_call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    result = await execute(
        name="x", description="d", agents=[EchoAgent()],
        script=[
            scenario.user("find my order"),
            scenario.agent({"role": "assistant", "content": None, "tool_calls": [tool_call]}),
            scenario.message({"role": "tool", "tool_call_id": "c1", "content": "order 42"}),
            scenario.agent("Your order is 42."),
            lambda state: (
                scenario.ScenarioResult(success=True, reasoning="tool used")
                if state.has_tool_call("lookup") and state.last_tool_call("lookup")["id"] == "c1"
                else None
            ),
        ],
    )
    assert result.success and result.reasoning == "tool used"
    assert [m["role"] for m in result.messages] == ["user", "assistant", "tool", "assistant"]


async def test_async_and_sync_custom_steps_see_state(execute):
    seen = []

    def sync_step(state: scenario.ScenarioState) -> None:
        seen.append(("sync", state.last_user_message()["content"], state.current_turn))

    async def async_step(state: scenario.ScenarioState) -> None:
        seen.append(("async", state.last_agent_message(), len(state.messages)))

    result = await execute(
        name="x", description="d", agents=[EchoAgent()],
        script=[scenario.user("a"), sync_step, scenario.agent(), async_step, scenario.succeed()],
    )
    assert result.success
    assert seen == [("sync", "a", 0), ("async", "echo: a", 2)]


async def test_turns_advance_when_user_speaks_again(execute):
    turns = []
    result = await execute(
        name="x", description="d", agents=[EchoAgent()],
        script=[
            scenario.user("1"), scenario.agent(), lambda s: turns.append(s.current_turn),
            scenario.user("2"), scenario.agent(), lambda s: turns.append(s.current_turn),
            scenario.succeed(),
        ],
    )
    assert result.success and turns == [0, 1]


async def test_user_with_content_needs_no_user_simulator(execute):
    result = await execute(name="x", description="d", agents=[EchoAgent()], script=[scenario.user("hi"), scenario.agent(), scenario.succeed()])
    assert result.success


@pytest.mark.parametrize(
    "value, expected",
    [
        ("plain", [{"role": "assistant", "content": "plain"}]),
        ({"role": "assistant", "content": "dict"}, [{"role": "assistant", "content": "dict"}]),
        (
            [
                {"role": "assistant", "content": None, "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "t", "content": "42"},
                {"role": "assistant", "content": "done"},
            ],
            None,
        ),
        ([], []),
    ],
    ids=["str", "dict", "list-with-tools", "empty-list"],
)
async def test_agent_return_types(execute, value, expected):
    result = await execute(
        name="x", description="d", agents=[ReturnsAgent(value)], script=[scenario.user("hi"), scenario.agent(), scenario.succeed()]
    )
    assert result.success
    produced = result.messages[1:]
    assert produced == (expected if expected is not None else value)


async def test_pydantic_and_litellm_message_objects_are_accepted(execute):
    from litellm.types.utils import Message as LitellmMessage
    from openai.types.chat import ChatCompletionMessage

    for value in (
        LitellmMessage(role="assistant", content="from litellm"),
        ChatCompletionMessage(role="assistant", content="from openai"),
    ):
        result = await execute(
            name="x", description="d", agents=[ReturnsAgent(value)], script=[scenario.user("hi"), scenario.agent(), scenario.succeed()]
        )
        assert result.messages[1]["role"] == "assistant"
        assert result.messages[1]["content"] in ("from litellm", "from openai")
        assert set(result.messages[1]) <= {"role", "content"}


async def test_agent_returning_scenario_result_ends_scripted_and_autopilot(execute):
    verdict = scenario.ScenarioResult(success=False, reasoning="agent gave up")
    scripted = await execute(
        name="x", description="d", agents=[ReturnsAgent(verdict)],
        script=[scenario.user("hi"), scenario.agent(), scenario.succeed()],
    )
    assert not scripted.success and scripted.reasoning == "agent gave up"
    assert scripted.messages == [{"role": "user", "content": "hi"}]


async def test_bad_return_type_names_adapter_step_and_type(execute):
    result = await execute(name="x", description="d", agents=[ReturnsAgent(42)], script=[scenario.user("hi"), scenario.agent(), scenario.succeed()])
    assert not result.success
    assert result.error is not None and result.error.type == "AgentReturnError"
    assert "ReturnsAgent" in result.reasoning and "int" in result.reasoning and "step 2 (agent)" in result.reasoning


async def test_dict_without_role_is_rejected_with_advice(execute):
    result = await execute(name="x", description="d", agents=[ReturnsAgent({"content": "x"})], script=[scenario.user("hi"), scenario.agent(), scenario.succeed()])
    assert not result.success and "without a 'role'" in result.reasoning


async def test_adapter_raising_gives_failed_result_with_where(execute):
    result = await execute(name="x", description="d", agents=[RaisingAgent()], script=[scenario.user("hi"), scenario.agent(), scenario.succeed()])
    assert not result.success
    assert result.error.type == "RuntimeError" and "database unavailable" in result.reasoning
    assert "agent adapter RaisingAgent" in result.error.where and "step 2" in result.error.where
    assert isinstance(result.exception, RuntimeError)
    assert result.messages == [{"role": "user", "content": "hi"}]  # nothing lost


async def test_custom_step_assertion_becomes_failed_result(execute):
    def check(state):
        assert state.has_tool_call("refund"), "agent never called refund"

    result = await execute(name="x", description="d", agents=[EchoAgent()], script=[scenario.user("hi"), scenario.agent(), check, scenario.succeed()])
    assert not result.success and "agent never called refund" in result.reasoning and "step 3 (check)" in result.reasoning


async def test_sync_adapter_thread_placement():
    """run: called on the scenario's own worker thread. arun: offloaded, never on the loop thread."""
    import threading

    agent = SyncEchoAgent()
    await scenario.run(name="x", description="d", agents=[agent], script=[scenario.user("a"), scenario.agent(), scenario.succeed()])
    await scenario.arun(name="x", description="d", agents=[agent], script=[scenario.user("a"), scenario.agent(), scenario.succeed()])
    assert all(name.startswith("scenario-worker") for name in agent.threads)
    assert threading.current_thread().name not in agent.threads


async def test_timeout_fails_run_as_timed_out(execute):
    import asyncio

    class Slow(scenario.AgentAdapter):
        async def call(self, input):
            await asyncio.sleep(30)

    result = await execute(name="x", description="d", agents=[Slow()], script=[scenario.user("a"), scenario.agent(), scenario.succeed()], timeout=0.2)
    assert not result.success and result.error.type == "TimeoutError"
    assert "Timed out after 0.2s" in result.reasoning


async def test_state_helpers():
    state = scenario.ScenarioState(description="d", thread_id="t")
    with pytest.raises(ValueError, match="no messages"):
        state.last_message()
    with pytest.raises(ValueError, match="role 'user'"):
        state.last_user_message()
    assert state.last_agent_message() == "" and state.first_user_message() == ""
    assert state.transcript() == "" and len(state.tool_calls()) == 0 and not state.tool_calls("x").last
    state.add_message({"role": "user", "content": "hi\nthere"})
    assert state.transcript() == "user: hi\nthere"
    assert state.last_tool_call("x") is None and not state.has_tool_call("x")


async def test_agent_input_helpers():
    empty = scenario.AgentInput(thread_id="t", messages=[], new_messages=[])
    with pytest.raises(ValueError, match="no new user message"):
        empty.last_new_user_message()
    parts = scenario.AgentInput(thread_id="t", messages=[], new_messages=[{"role": "user", "content": [{"type": "text", "text": "x"}]}])
    with pytest.raises(ValueError, match="not text"):
        parts.last_new_user_message_str()
    assert AgentRole.USER.key == "user"
