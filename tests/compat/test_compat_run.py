"""run/arun as langwatch-scenario users call them: every keyword, live messages, judge semantics."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

import scenario
from scenario.compat.peer_keywords import NoEffectWarning, reset_warnings
from tests.helpers.agents import EXECUTORS, EchoAgent
from tests.telemetry.test_telemetry import app_provider, spans  # noqa: F401  (fixtures)

PLATFORM_KEYWORDS = {
    "fetch_remote_traces": True,
    "trace_wait_timeout": 5.0,
    "parameters": {"tenant": "acme"},
    "evaluators": [scenario.evaluator("ragas/faithfulness")],
    "on_audio_chunk": print,
    "on_voice_event": print,
    "audio_playback": True,
}


@pytest.fixture(autouse=True)
def _fresh_warnings():
    reset_warnings()
    yield
    reset_warnings()


def _script() -> list[Any]:
    return [scenario.user("hi"), scenario.agent(), scenario.succeed("done")]


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["run", "arun"])
async def test_every_peer_keyword_is_accepted(executor):
    result = await EXECUTORS[executor](
        name="all keywords", description="d", agents=[EchoAgent()], max_turns=5, min_turns=0, verbose=0,
        cache_key=None, debug=False, script=_script(), set_id="set-1", metadata={"team": "x"},
        fields={"golden": "42"}, fetch_remote_traces=None, trace_wait_timeout=None, parameters=None,
        evaluators=None, on_audio_chunk=None, on_voice_event=None, audio_playback=False,
    )
    assert result.success and result.reasoning == "done"


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["run", "arun"])
async def test_defaults_of_platform_keywords_say_nothing(executor):
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoEffectWarning)
        await EXECUTORS[executor](name="quiet", description="d", agents=[EchoAgent()], script=_script(),
                                  fetch_remote_traces=False, evaluators=[], parameters={})


@pytest.mark.asyncio
@pytest.mark.parametrize("keyword", sorted(PLATFORM_KEYWORDS))
async def test_a_platform_keyword_set_warns_once_naming_it(keyword):
    with pytest.warns(NoEffectWarning, match=rf"scenario.run\({keyword}=\.\.\.\) has no effect") as caught:
        for _ in range(3):
            result = await scenario.run(name="w", description="d", agents=[EchoAgent()], script=_script(),
                                        **{keyword: PLATFORM_KEYWORDS[keyword]})
            assert result.success
    assert len([w for w in caught if issubclass(w.category, NoEffectWarning)]) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["run", "arun"])
async def test_messages_seen_by_an_adapter_keep_growing_like_the_peers(executor):
    kept = {}

    class Keeper(scenario.AgentAdapter):
        async def call(self, input: scenario.AgentInput) -> str:
            kept.setdefault("input", input.messages)
            return "ok"

    def keep_state(state: scenario.ScenarioState) -> None:
        kept.setdefault("state", state.messages)

    result = await EXECUTORS[executor](
        name="live", description="d", agents=[Keeper()],
        script=[scenario.user("one"), keep_state, scenario.agent(), scenario.user("two"), scenario.agent(),
                scenario.succeed()],
    )
    assert result.success
    assert [m["content"] for m in kept["input"]] == ["one", "ok", "two", "ok"]
    assert kept["state"] is kept["input"]
    assert len(result.messages) == 4


@pytest.mark.asyncio
async def test_propagation_headers_carry_the_agent_calls_span(spans):  # noqa: F811
    seen = {}

    class Remote(scenario.AgentAdapter):
        async def call(self, input: scenario.AgentInput) -> str:
            seen.update(input.propagation_headers)
            return "ok"

    await scenario.run(name="headers", description="d", agents=[Remote()], script=_script())
    invoke = next(s for s in spans.get_finished_spans() if s.name == "invoke_agent Remote")
    trace_id, span_id = f"{invoke.context.trace_id:032x}", f"{invoke.context.span_id:016x}"
    assert seen["traceparent"].startswith(f"00-{trace_id}-{span_id}-")


@pytest.mark.asyncio
async def test_fields_are_readable_from_script_steps():
    def compare(state: scenario.ScenarioState) -> None:
        assert state.field("golden") == "42" and state.fields == {"golden": "42", "blank": ""}
        assert state.field("blank") is None and state.field("absent") is None

    result = await scenario.run(name="fields", description="d", agents=[EchoAgent()],
                                script=[compare, scenario.succeed()], fields={"golden": "42", "blank": ""})
    assert result.success, result.reasoning


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["run", "arun"])
async def test_min_turns_keeps_the_judge_from_ending_early(executor, configured, mock_server):
    # The mock judge is ready to finish after one agent reply: without min_turns it would.
    mock_server.behavior = mock_server.behavior.with_changes(judge_turns=1)
    try:
        agents = lambda: [EchoAgent(), scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=["polite"])]  # noqa: E731
        early = await EXECUTORS[executor](name="early", description="d", agents=agents())
        late = await EXECUTORS[executor](name="late", description="d", agents=agents(), min_turns=3)
    finally:
        mock_server.behavior = mock_server.behavior.with_changes(judge_turns=2)
    assert early.success and late.success
    replies = lambda r: sum(1 for m in r.messages if m["role"] == "assistant")  # noqa: E731
    assert replies(early) == 1 and replies(late) == 3


@pytest.mark.parametrize("value", [-1, 11, 2.5, True])
def test_min_turns_must_fit_within_max_turns(value):
    with pytest.raises(scenario.ScenarioConfigError, match="min_turns must be an integer from 0 to max_turns"):
        scenario.run(name="x", description="d", agents=[EchoAgent()], script=_script(), min_turns=value).send(None)


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["run", "arun"])
async def test_judge_without_criteria_uses_inline_checkpoints(executor, configured):
    result = await EXECUTORS[executor](
        name="inline", description="d", agents=[EchoAgent(), scenario.JudgeAgent()],
        script=[
            scenario.user("hello"), scenario.agent(), scenario.judge(criteria=["Greets back"]),
            scenario.user("bye"), scenario.agent(), scenario.judge(criteria=["Says goodbye", "Stays polite"]),
        ],
    )
    assert result.success, result.reasoning
    assert "checkpoints passed" in result.reasoning
    assert result.passed_criteria == ["Greets back", "Says goodbye", "Stays polite"]


@pytest.mark.asyncio
async def test_a_failed_inline_checkpoint_fails_the_run(configured):
    result = await scenario.run(
        name="inline fail", description="d", agents=[EchoAgent(), scenario.JudgeAgent()],
        script=[scenario.user("hello"), scenario.agent(), scenario.judge(criteria=["Gives a refund [mock:fail]"]),
                scenario.succeed()],
    )
    assert not result.success and result.failed_criteria == ["Gives a refund [mock:fail]"]


@pytest.mark.parametrize("script", [None, [scenario.user("hi"), scenario.agent(), scenario.judge()]])
def test_a_judge_with_no_criteria_anywhere_is_a_setup_error(script):
    agents = [EchoAgent(), scenario.UserSimulatorAgent(), scenario.JudgeAgent()]
    with pytest.raises(scenario.ScenarioConfigError) as caught:
        scenario.run(name="none", description="d", agents=agents, script=script).send(None)
    message = str(caught.value)
    assert "JudgeAgent(criteria=" in message and "scenario.judge(criteria=" in message


@pytest.mark.asyncio
async def test_a_step_function_may_return_a_step_to_run_now():
    def stop_here(state: scenario.ScenarioState) -> Any:
        return scenario.fail("stopped by a step function")

    result = await scenario.run(name="handoff", description="d", agents=[EchoAgent()],
                                script=[scenario.user("hi"), stop_here, scenario.agent(), scenario.succeed()])
    assert not result.success and result.reasoning == "stopped by a step function"
    assert len(result.messages) == 1


@pytest.mark.asyncio
async def test_rollback_cuts_the_conversation_and_agents_see_the_shorter_one():
    agent = EchoAgent()

    def forget_first_exchange(state: scenario.ScenarioState) -> None:
        removed = state.rollback_messages_to(0)
        assert [m["content"] for m in removed] == ["first", "echo: first"]

    result = await scenario.run(
        name="rollback", description="d", agents=[agent],
        script=[scenario.user("first"), scenario.agent(), forget_first_exchange, scenario.user("second"),
                scenario.agent(), scenario.succeed()],
    )
    assert [m["content"] for m in result.messages] == ["second", "echo: second"]
    assert [m["content"] for m in agent.inputs[1].new_messages] == ["second"]


def test_state_helpers_the_peer_has():
    state = scenario.ScenarioState(description="d", thread_id="t")
    assert state.first_user_message() == ""
    state.messages.extend([{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}])
    assert state.first_user_message() == "hello" and state.criteria == []
    with pytest.raises(ValueError, match="index must be an integer >= 0"):
        state.rollback_messages_to(-1)


def test_peer_only_agent_options_are_accepted_warned_and_not_sent_to_the_model():
    with pytest.warns(NoEffectWarning, match=r"JudgeAgent\(include_audio=\.\.\.\) has no effect"):
        judge = scenario.JudgeAgent(criteria=["ok"], include_audio=True, span_collector=None)
    with pytest.warns(NoEffectWarning, match=r"UserSimulatorAgent\(voice=\.\.\.\) has no effect"):
        simulator = scenario.UserSimulatorAgent(voice="alloy", interrupt_probability=0.0)
    assert "include_audio" not in judge.litellm_params and "voice" not in simulator.litellm_params


@pytest.mark.asyncio
async def test_persona_reaches_the_simulator_prompt(configured, mock_server):
    from scenario.agents.user_simulator import UserSimulatorAgent

    captured = {}

    class Spy(UserSimulatorAgent):
        async def call(self, input):  # type: ignore[override]
            from scenario.llm import client as models

            original = models.complete

            async def complete(**kwargs):
                captured["system"] = kwargs["messages"][0]["content"]
                return await original(**kwargs)

            models.complete = complete
            try:
                return await super().call(input)
            finally:
                models.complete = original

    result = await scenario.run(name="persona", description="d", agents=[EchoAgent(), Spy(persona="An impatient retiree.")],
                                script=[scenario.user(), scenario.succeed()])
    assert result.success
    assert "<persona>\nAn impatient retiree.\n</persona>" in captured["system"]


def test_configure_takes_a_verbosity_level():
    assert scenario.configure(verbose=2).verbose is True


@pytest.mark.asyncio
async def test_proceeding_to_the_turn_limit_after_passed_checkpoints_succeeds(configured):
    result = await scenario.run(
        name="checkpoint then proceed", description="d", max_turns=3,
        agents=[EchoAgent(), scenario.UserSimulatorAgent(), scenario.JudgeAgent()],
        script=[scenario.user("hi"), scenario.agent(), scenario.judge(criteria=["Greets back"]), scenario.proceed()],
    )
    assert result.success, result.reasoning
    assert result.reasoning.startswith("Reached the turn limit (max_turns=3) after the judge() checkpoints passed")
    assert sum(1 for m in result.messages if m["role"] == "assistant") == 3
