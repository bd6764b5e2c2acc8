"""The mock model also answers langwatch-scenario's simulator and judge, so bench/ can run the
library we replace against the same server (its cold first run is one of the issue's targets)."""

from __future__ import annotations

import json

from scenario.testing.mock_behavior import MockBehavior, build_reply, parse_request

PEER_SIMULATOR_PROMPT = (
    "<role>\nYou are pretending to be a user, you are testing an AI Agent (shown as the user role) based on a "
    "scenario.\n</role>\n<scenario>\nA customer asks about a parcel.\n</scenario>"
)


def _tool(name: str, properties=None) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": properties or {}}}}


def _request(messages, tools=None, tool_choice=None):
    body = {"model": "openai/gpt-4o-mini", "messages": messages}
    if tools:
        body["tools"] = tools
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    return parse_request(json.dumps(body).encode())


def _transcript(agent_replies: int) -> str:
    lines = []
    for i in range(agent_replies):
        lines += [f'user: "question {i}"', f'assistant: "answer {i}"']
    return "<transcript>\n" + "\n".join(lines) + "\n</transcript>"


def test_the_peers_user_simulator_prompt_gets_a_user_turn():
    request = _request([{"role": "system", "content": PEER_SIMULATOR_PROMPT}, {"role": "user", "content": "Hello"}])
    assert request.role == "user"
    reply = build_reply(request, MockBehavior())
    assert reply.tool_name is None and reply.content and "Mock agent reply" not in reply.content


def test_the_peers_judge_continues_then_asks_for_the_verdict_after_judge_turns_agent_replies():
    decision_tools = [_tool("continue_test"), _tool("make_verdict")]
    behavior = MockBehavior(judge_turns=2)
    early = _request([{"role": "system", "content": "judge"}, {"role": "user", "content": _transcript(1)}],
                     decision_tools, "required")
    late = _request([{"role": "system", "content": "judge"}, {"role": "user", "content": _transcript(2)}],
                    decision_tools, "required")
    assert early.role == late.role == "judge"
    assert build_reply(early, behavior).tool_name == "continue_test"
    assert build_reply(late, behavior).tool_name == "make_verdict"


def test_the_peers_verdict_call_gets_finish_test_with_every_criterion():
    finish = _tool("finish_test", {"criteria": {"type": "object", "properties": {
        "agent_answers": {"type": "object", "description": "The agent answers"}}}})
    request = _request([{"role": "system", "content": "judge"}, {"role": "user", "content": _transcript(2)}],
                       [finish], {"type": "function", "function": {"name": "finish_test"}})
    reply = build_reply(request, MockBehavior())
    assert reply.tool_name == "finish_test"
    arguments = json.loads(reply.tool_arguments)
    assert arguments["criteria"]["agent_answers"]["status"] == "passed"
    assert "after 2 agent replies" in arguments["reasoning"]
