"""An inconclusive criterion does not pass a run (langwatch-scenario 1.6.0's rule), under both executors.

The mock judge marks a criterion holding ``[mock:inconclusive]`` inconclusive and one holding
``[mock:fail]`` failed; it offers a verdict of its own accord once the agent has replied twice
(MockBehavior.judge_turns) and always when made to (last turn, ``scenario.judge()``).
"""

from __future__ import annotations

import json

import pytest

import scenario
from scenario.agents.judge import parse_verdict
from scenario.llm import client as models
from tests.helpers.agents import EXECUTORS, EchoAgent

UNDECIDED = "Agent mentions the tracking link [mock:inconclusive]"
FAILING = "Agent offers a refund [mock:fail]"


@pytest.fixture(params=sorted(EXECUTORS))
def execute(request):
    return EXECUTORS[request.param]


def team(criteria, **judge_kwargs):
    return [EchoAgent(), scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=criteria, **judge_kwargs)]


@pytest.mark.asyncio
async def test_a_voluntary_inconclusive_verdict_lets_the_conversation_go_on_and_the_last_turn_decides(execute, configured):
    result = await execute(name="undecided", description="A customer asks where the parcel is.",
                           agents=team(["Agent replies", UNDECIDED]), max_turns=4)
    assert not result.success
    # The judge offered its verdict after the second reply, but "could not tell" is not final:
    # the run went on until the last turn made the judge rule.
    assert [m["role"] for m in result.messages].count("assistant") == 4
    assert [c.status for c in result.criteria] == ["passed", "inconclusive"]
    assert result.passed_criteria == ["Agent replies"]
    assert result.inconclusive_criteria == [UNDECIDED]
    assert result.failed_criteria == [UNDECIDED]  # as with langwatch-scenario: success is "nothing failed"
    assert result.reasoning.startswith(
        f"Not passed: the judge could not decide 1 criterion from the conversation (inconclusive: {UNDECIDED!r})"
    )
    assert "Judge: Mock judge verdict after 4 agent replies: 1 passed, 0 failed, 1 inconclusive." in result.reasoning


@pytest.mark.asyncio
async def test_a_failed_criterion_ends_the_run_at_once_with_the_judges_own_reasoning(execute, configured):
    result = await execute(name="failed", description="d", agents=team([UNDECIDED, FAILING]), max_turns=6)
    assert not result.success
    assert [m["role"] for m in result.messages].count("assistant") == 2
    assert result.failed_criteria == [UNDECIDED, FAILING] and result.inconclusive_criteria == [UNDECIDED]
    assert result.reasoning == "Mock judge verdict after 2 agent replies: 0 passed, 1 failed, 1 inconclusive."


@pytest.mark.asyncio
async def test_an_inconclusive_checkpoint_stops_the_script(execute, configured):
    reached = []
    result = await execute(
        name="checkpoint", description="d", agents=team(None),
        script=[
            scenario.user("where is my parcel?"), scenario.agent(),
            scenario.judge(criteria=["Agent replies"]),
            scenario.user("and the link?"), scenario.agent(),
            scenario.judge(criteria=[UNDECIDED]),
            lambda state: reached.append(True),
            scenario.succeed(),
        ],
    )
    assert not result.success and reached == []
    assert result.inconclusive_criteria == [UNDECIDED] and result.failed_criteria == [UNDECIDED]
    assert [c.status for c in result.criteria] == ["passed", "inconclusive"]  # the passed checkpoint kept
    assert "Not passed: the judge could not decide 1 criterion" in result.reasoning


@pytest.mark.asyncio
async def test_all_criteria_passed_still_succeeds(execute, configured):
    result = await execute(name="passes", description="d", agents=team(["Agent replies", "Agent is polite"]))
    assert result.success, result.reasoning
    assert result.failed_criteria == [] and result.inconclusive_criteria == []


@pytest.mark.asyncio
async def test_pytest_failure_text_names_the_inconclusive_criterion(configured):
    from scenario.reports.failure_text import explain

    result = await scenario.arun(name="explain", description="d", agents=team([UNDECIDED]), max_turns=2)
    text = explain(result)
    assert f"INCONCLUSIVE: {UNDECIDED}" in text and "Verdict: Not passed" in text


# -- the verdict rule itself (no model needed) ------------------------------------------------

def _finish(criteria_answers, reasoning="judge says"):
    arguments = json.dumps({"criteria": criteria_answers, "reasoning": reasoning})
    return models.ModelResponse(content=None, model="m", tool_calls=[
        {"id": "f", "type": "function", "function": {"name": "finish_test", "arguments": arguments}}])


def test_a_criterion_the_judge_left_out_fails_closed():
    result = parse_verdict(_finish({"k1": {"status": "passed", "reasoning": "ok"}}), ["k1", "k2"], ["A", "B"],
                           forced=True, messages=[])
    assert not result.success
    assert result.failed_criteria == ["B"] and result.inconclusive_criteria == []
    assert "no valid status" in result.criteria[1].reasoning


def test_no_criteria_at_all_does_not_pass():
    assert parse_verdict(_finish({}), [], [], forced=False, messages=[]) is None
    result = parse_verdict(_finish({}), [], [], forced=True, messages=[])
    assert not result.success
    assert result.reasoning.startswith("Not passed: the judge ruled on no criteria")


def test_a_voluntary_inconclusive_verdict_is_not_final_but_a_forced_one_is():
    answers = {"k1": {"status": "passed", "reasoning": "ok"}, "k2": {"status": "inconclusive", "reasoning": "?"}}
    assert parse_verdict(_finish(answers), ["k1", "k2"], ["A", "B"], forced=False, messages=[]) is None
    result = parse_verdict(_finish(answers), ["k1", "k2"], ["A", "B"], forced=True, messages=[])
    assert not result.success and result.inconclusive_criteria == ["B"] and result.passed_criteria == ["A"]


@pytest.mark.asyncio
async def test_a_judge_without_criteria_asked_for_a_verdict_fails_without_a_model_call():
    judge = scenario.JudgeAgent(model="openai/never-called", api_base="http://127.0.0.1:9")
    state = scenario.ScenarioState(description="d", thread_id="t")
    asked = scenario.AgentInput(thread_id="t", messages=[], new_messages=[], scenario_state=state,
                                judgment_request=scenario.JudgmentRequest())
    result = await judge.call(asked)
    assert not result.success and "has no criteria to rule on" in result.reasoning
    unasked = scenario.AgentInput(thread_id="t", messages=[], new_messages=[], scenario_state=state)
    assert await judge.call(unasked) is None
