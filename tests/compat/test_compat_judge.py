"""The judge on long conversations (condensed transcript + lookups) and context-window errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

import scenario
from scenario.agents.judge_transcript import answer_lookup, condensed_transcript, estimate_tokens
from scenario.engine.state import render_transcript
from scenario.testing import MockBehavior, MockLLMServer

LONG_REPLY = "Here is a long and detailed answer about your order. " * 120  # ~1600 tokens


class VerboseAgent(scenario.AgentAdapter):
    async def call(self, input: scenario.AgentInput) -> str:
        return LONG_REPLY


class RecordingMock(MockLLMServer):
    """Keeps every judge request it answered."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.judge_requests: list[Any] = []

    def _completion_body(self, parsed: Any, reply: Any) -> bytes:
        if parsed.role == "judge":
            self.judge_requests.append(parsed)
        return super()._completion_body(parsed, reply)


def _long_script(exchanges: int = 6) -> list[Any]:
    steps = [s for i in range(exchanges) for s in (scenario.user(f"question {i}"), scenario.agent())]
    return steps + [scenario.judge()]


def _configure(server: MockLLMServer) -> None:
    scenario.configure(default_model=scenario.ModelConfig(
        model="openai/gpt-4o-mini", api_base=server.base_url, api_key="mock", timeout=10))


@pytest.mark.asyncio
async def test_a_long_conversation_is_condensed_and_the_judge_looks_messages_up():
    # ~10k tokens of conversation, a model window of 6k: only the condensed transcript fits.
    with RecordingMock(behavior=MockBehavior(context_window=6000)) as server:
        _configure(server)
        result = await scenario.run(
            name="long", description="d", script=_long_script(),
            agents=[VerboseAgent(), scenario.JudgeAgent(criteria=["Answers every question"], token_threshold=4096)],
        )
    assert result.success, result.reasoning
    first, second = server.judge_requests
    transcript = first.messages[1]["content"]
    assert 'index="11"' in transcript and "chars=" in transcript and "condensed" in transcript
    assert estimate_tokens(transcript) < 4096
    assert {t["function"]["name"] for t in first.tools} >= {"read_messages", "search_messages", "finish_test"}
    lookup_answer = next(m for m in second.messages if m.get("role") == "tool")
    assert lookup_answer["content"] == "[0] user: question 0"
    assert result.usage.by_role["judge"].calls == 2


@pytest.mark.asyncio
async def test_a_context_window_error_from_the_judge_surfaces_with_its_message():
    with MockLLMServer(behavior=MockBehavior(context_window=6000)) as server:
        _configure(server)
        result = await scenario.run(
            name="overflow", description="d", script=_long_script(),
            agents=[VerboseAgent(), scenario.JudgeAgent(criteria=["ok"], token_threshold=1_000_000)],
        )
        served = server.stats.errors_served
    assert not result.success
    assert result.error is not None and "judge" in result.error.where
    assert "ContextWindowExceededError" in result.reasoning
    assert "maximum context length is 6000 tokens" in result.reasoning
    assert served == {400: 1}, "a context-window error is not worth retrying"


@pytest.mark.asyncio
async def test_a_short_conversation_is_judged_whole_without_lookup_tools():
    with RecordingMock() as server:
        _configure(server)
        result = await scenario.run(
            name="short", description="d", agents=[VerboseAgent(), scenario.JudgeAgent(criteria=["ok"])],
            script=[scenario.user("hi"), scenario.agent(), scenario.judge()],
        )
    assert result.success
    (request,) = server.judge_requests
    assert "read_messages" not in {t["function"]["name"] for t in request.tools}
    assert LONG_REPLY.strip() in request.messages[1]["content"]


@pytest.mark.asyncio
async def test_no_discovery_steps_means_a_condensed_transcript_without_tools():
    with RecordingMock(behavior=MockBehavior(context_window=6000)) as server:
        _configure(server)
        judge = scenario.JudgeAgent(criteria=["ok"], token_threshold=4096, max_discovery_steps=0)
        result = await scenario.run(name="no lookups", description="d", agents=[VerboseAgent(), judge],
                                    script=_long_script())
    assert result.success
    (request,) = server.judge_requests
    assert "read_messages" not in {t["function"]["name"] for t in request.tools}


@pytest.mark.asyncio
async def test_additional_context_reaches_the_judge():
    with RecordingMock() as server:
        _configure(server)
        result = await scenario.run(
            name="context", description="d", agents=[VerboseAgent(), scenario.JudgeAgent()],
            script=[scenario.user("hi"), scenario.agent(),
                    scenario.judge(criteria=["Files were written"], additional_context="$ ls\nreport.csv"),
                    scenario.judge(criteria=["Still fine"], additional_context="")],
        )
    assert result.success, result.reasoning
    with_context, without = (r.messages[1]["content"] for r in server.judge_requests)
    assert "<additional_context>\n$ ls\nreport.csv\n</additional_context>" in with_context
    assert "<additional_context>" not in without


def test_condensed_transcript_stays_within_budget_and_says_what_it_left_out():
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i} " + "x" * 500}
                for i in range(400)]
    text = condensed_transcript(messages, 2048)
    assert estimate_tokens(text) <= 2048 * 3 // 4
    assert '<message role="user" index="0"' in text and 'index="399"' in text
    omitted = json.loads("[" + text.split('<omitted from="')[1].split('"')[0] + "]")[0]
    assert omitted == 2
    assert estimate_tokens(render_transcript(messages)) > 20 * 2048


def test_lookups_answer_reads_searches_and_explain_bad_arguments():
    messages = [{"role": "user", "content": "my code is SAVE50?"}, {"role": "assistant", "content": "No codes here."}]
    call = lambda name, args: {"function": {"name": name, "arguments": json.dumps(args)}}  # noqa: E731
    assert answer_lookup(call("read_messages", {"indices": [1]}), messages, 4096) == "[1] assistant: No codes here."
    assert "no such message" in answer_lookup(call("read_messages", {"indices": [7]}), messages, 4096)
    assert "[0] user" in answer_lookup(call("search_messages", {"query": "save50"}), messages, 4096)
    assert "No message contains" in answer_lookup(call("search_messages", {"query": "refund"}), messages, 4096)
    assert "list of integers" in answer_lookup(call("read_messages", {"indices": "1"}), messages, 4096)
    assert "not valid JSON" in answer_lookup({"function": {"name": "read_messages", "arguments": "{"}}, messages, 4096)


@pytest.mark.parametrize("kwargs", [{"token_threshold": 10}, {"max_discovery_steps": -1}, {"token_threshold": "8k"}])
def test_judge_lookup_settings_are_checked(kwargs):
    with pytest.raises(scenario.ScenarioConfigError, match="expected an integer"):
        scenario.JudgeAgent(criteria=["ok"], **kwargs)


@pytest.mark.asyncio
async def test_one_huge_reply_overflows_neither_the_simulator_nor_the_judge():
    class Huge(scenario.AgentAdapter):
        async def call(self, input: scenario.AgentInput) -> str:
            return "Here's some weather data:\n" + "x" * 200_000  # ~50k tokens

    with MockLLMServer(behavior=MockBehavior(context_window=16_000)) as server:
        _configure(server)
        result = await scenario.run(
            name="huge reply", description="A user asks for weather info.",
            agents=[Huge(), scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=["Gives weather info"])],
        )
        served = server.stats.errors_served
    assert result.success, result.reasoning
    assert served == {}
