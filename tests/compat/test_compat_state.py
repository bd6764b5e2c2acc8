"""ScenarioState's reading helpers return what langwatch-scenario 1.6.0's return, under both executors.

A suite written for it asserts on these values (``"refund" in state.last_agent_message()``,
``state.tool_calls("lookup").last.input["order"]``), so the types matter, not only the content.
"""

from __future__ import annotations

import json

import pytest

import scenario
from tests.helpers.agents import EXECUTORS


@pytest.fixture(params=sorted(EXECUTORS))
def execute(request):
    return EXECUTORS[request.param]


class OrderAgent(scenario.AgentAdapter):
    """Looks the order up with a tool on the first question, answers in text afterwards."""

    async def call(self, input: scenario.AgentInput):
        question = input.last_new_user_message_str()
        if "order" in question:
            call = {"id": "call_1", "type": "function",
                    "function": {"name": "lookup_order", "arguments": json.dumps({"order": 42})}}
            return [
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "shipped"},
                {"role": "assistant", "content": "Order 42 has shipped; a refund is not needed."},
            ]
        return "Anything else I can help with?"


@pytest.mark.asyncio
async def test_reading_helpers_return_the_peer_types(execute):
    seen = {}

    def before_agent(state: scenario.ScenarioState) -> None:
        seen["agent_before"] = state.last_agent_message()
        seen["calls_before"] = state.tool_calls("lookup_order")

    def after_agent(state: scenario.ScenarioState) -> None:
        seen["agent_text"] = state.last_agent_message()
        seen["first_user"] = state.first_user_message()
        seen["last_user"] = state.last_user_message()
        seen["last"] = state.last_message()
        seen["calls"] = state.tool_calls("lookup_order")
        seen["all_calls"] = state.tool_calls()
        seen["other_calls"] = state.tool_calls("cancel_order")
        seen["last_tool_call"] = state.last_tool_call("lookup_order")
        seen["has"] = (state.has_tool_call("lookup_order"), state.has_tool_call("cancel_order"))
        seen["transcript"] = state.transcript()

    def later(state: scenario.ScenarioState) -> None:
        seen["agent_later"] = state.last_agent_message()
        seen["turn_of_call"] = state.tool_calls("lookup_order").last.turn
        seen["current_turn"] = state.current_turn

    result = await execute(
        name="state helpers", description="d", agents=[OrderAgent()],
        script=[
            scenario.user("where is my order?"), before_agent, scenario.agent(), after_agent,
            scenario.user("thanks"), scenario.agent(), later, scenario.succeed(),
        ],
    )
    assert result.success, result.reasoning

    # Text, "" before the agent spoke: a peer test's `"x" in state.last_agent_message()` checks text.
    assert seen["agent_before"] == "" and isinstance(seen["agent_text"], str)
    assert seen["agent_text"] == "Order 42 has shipped; a refund is not needed."
    assert "refund" in seen["agent_text"]
    assert seen["agent_later"] == "Anything else I can help with?"
    assert seen["first_user"] == "where is my order?"
    # The message dicts, as with the peer.
    assert seen["last_user"] == {"role": "user", "content": "where is my order?"}
    assert seen["last"]["role"] == "assistant" and seen["last"]["content"].startswith("Order 42")

    calls = seen["calls"]
    assert isinstance(calls, scenario.ToolCalls) and len(calls) == 1
    assert calls.last.name == "lookup_order" and calls.last.input == {"order": 42}
    assert calls.last.output == "shipped" and calls.first == calls.last and calls.last
    assert calls.inputs == [{"order": 42}] and calls.outputs == ["shipped"]
    assert calls[0].id == "call_1" and calls[0].source == "message"
    assert [c.name for c in seen["all_calls"]] == ["lookup_order"]
    assert len(seen["calls_before"]) == 0 and not seen["calls_before"].last
    empty = seen["other_calls"].last
    assert not empty and empty.name == "cancel_order" and empty.input is None and empty.output is None
    assert seen["turn_of_call"] == 0 and seen["current_turn"] == 1
    # last_tool_call stays the raw tool-call dict, as with the peer.
    assert seen["last_tool_call"]["function"]["name"] == "lookup_order"
    assert json.loads(seen["last_tool_call"]["function"]["arguments"]) == {"order": 42}
    assert seen["has"] == (True, False)

    lines = seen["transcript"].splitlines()
    assert lines[0] == "user: where is my order?"
    assert lines[1].startswith("assistant: ") and "lookup_order" in lines[1]
    assert lines[2] == "tool: shipped"
    assert lines[3] == "assistant: Order 42 has shipped; a refund is not needed."


@pytest.mark.asyncio
async def test_last_user_and_last_message_raise_on_an_empty_conversation(execute):
    errors = []

    def check(state: scenario.ScenarioState) -> None:
        for read in (state.last_message, state.last_user_message):
            try:
                read()
            except ValueError as exc:
                errors.append(str(exc))

    result = await execute(name="empty", description="d", agents=[OrderAgent()], script=[check, scenario.succeed()])
    assert result.success and len(errors) == 2
    assert "no messages" in errors[0] and "'user'" in errors[1]


@pytest.mark.asyncio
async def test_tool_calls_forget_rolled_back_messages(execute):
    seen = {}

    def rollback(state: scenario.ScenarioState) -> None:
        seen["before"] = len(state.tool_calls())
        state.rollback_messages_to(1)
        seen["after"] = len(state.tool_calls())
        seen["text"] = state.last_agent_message()

    result = await execute(
        name="rollback", description="d", agents=[OrderAgent()],
        script=[scenario.user("my order?"), scenario.agent(), rollback, scenario.succeed()],
    )
    assert result.success
    assert seen == {"before": 1, "after": 0, "text": ""}


@pytest.mark.asyncio
async def test_state_config_carries_the_runs_settings(execute):
    seen = {}

    def read_config(state: scenario.ScenarioState) -> None:
        seen["max_turns"] = state.config.max_turns
        seen["min_turns"] = state.config.min_turns
        seen["cache_key"] = state.config.cache_key

    scenario.configure(cache_key="global-key")
    result = await execute(
        name="config", description="d", agents=[OrderAgent()], max_turns=7, min_turns=2,
        script=[read_config, scenario.succeed()],
    )
    assert result.success
    assert seen == {"max_turns": 7, "min_turns": 2, "cache_key": "global-key"}


@pytest.mark.parametrize("name", ["spans", "traces", "contexts", "turns"])
def test_span_views_say_they_are_not_collected_here(name):
    state = scenario.ScenarioState(description="d", thread_id="t")
    with pytest.raises(scenario.NotSupportedError, match=rf"ScenarioState\.{name} reads the OpenTelemetry spans.*tool_calls"):
        getattr(state, name)


def test_voice_members_of_the_state():
    state = scenario.ScenarioState(description="d", thread_id="t")
    assert state.timeline == []
    with pytest.raises(scenario.NotSupportedError, match="voice"):
        state.set_effects([])
