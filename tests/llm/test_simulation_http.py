"""The user simulator and judge through real HTTP to the mock model, under both executors."""

from __future__ import annotations

import pytest

import scenario
from scenario.testing import MockLLMServer
from tests.helpers.agents import EXECUTORS, EchoAgent, SyncEchoAgent

pytestmark = pytest.mark.asyncio


@pytest.fixture(params=sorted(EXECUTORS))
def execute(request):
    return EXECUTORS[request.param]


def team(criteria, agent=None):
    return [agent or EchoAgent(), scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=criteria)]


async def test_autopilot_reaches_passing_verdict(execute, configured):
    result = await execute(name="autopilot", description="A customer asks about shipping times.", agents=team(["Agent replies"]))
    assert result.success, result.reasoning
    roles = [m["role"] for m in result.messages]
    assert roles == ["user", "assistant", "user", "assistant"]  # mock judge decides after 2 agent replies
    assert result.messages[0]["content"] != result.messages[2]["content"]
    assert result.passed_criteria == ["Agent replies"] and result.failed_criteria == []
    assert result.criteria[0].status == "passed" and result.criteria[0].reasoning


async def test_failing_criterion_fails_scenario(execute, configured):
    result = await execute(
        name="failing", description="d", agents=team(["Agent is polite", "Agent offers a refund [mock:fail]"]),
    )
    assert not result.success
    assert result.failed_criteria == ["Agent offers a refund [mock:fail]"]
    assert result.passed_criteria == ["Agent is polite"]


async def test_inconclusive_does_not_pass(execute, configured):
    criterion = "Agent mentions tracking [mock:inconclusive]"
    result = await execute(name="inc", description="d", agents=team([criterion]), max_turns=3)
    assert not result.success
    assert result.criteria[0].status == "inconclusive"
    assert result.inconclusive_criteria == [criterion] and result.failed_criteria == [criterion]
    assert result.reasoning.startswith("Not passed: the judge could not decide 1 criterion")


async def test_usage_and_cost_rollup_by_role_and_model(execute, configured):
    import litellm

    result = await execute(name="usage", description="d", agents=team(["ok"]))
    usage = result.usage
    assert usage.calls == 4 and usage.by_role["user"].calls == 2 and usage.by_role["judge"].calls == 2
    assert usage.by_role["agent"].calls == 0
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    price = litellm.model_cost["gpt-4o-mini"]
    expected = usage.input_tokens * price["input_cost_per_token"] + usage.output_tokens * price["output_cost_per_token"]
    assert usage.cost_usd == pytest.approx(expected, rel=1e-9)
    assert sum(t.calls for t in usage.by_model.values()) == 4


async def test_turn_limit_forces_judge_then_fails_without_verdict(execute, configured):
    # The mock judge would wait for 5 replies; max_turns=2 forces it to rule on the 2nd turn.
    forced = await execute(name="forced", description="[mock:turns=5] d", agents=team(["ok"]), max_turns=2)
    assert forced.success and len([m for m in forced.messages if m["role"] == "assistant"]) == 2

    # Without a judge nothing could end the run: refused at set-up, before any turn is spent.
    with pytest.raises(scenario.ScenarioConfigError, match=r"autopilot \(no script\) can only end with a judge's "
                       r"verdict.*run all 3 turns.*Add scenario.JudgeAgent\(criteria=\[...\]\).*scenario.succeed\(\)"):
        await execute(name="limit", description="d", agents=[EchoAgent(), scenario.UserSimulatorAgent()], max_turns=3)
    # An open proceed() without a judge too; a bounded one followed by a verdict is fine.
    with pytest.raises(scenario.ScenarioConfigError, match=r"the script's proceed\(\) without turns="):
        await execute(name="open", description="d", agents=[EchoAgent(), scenario.UserSimulatorAgent()],
                      script=[scenario.proceed()])
    bounded = await execute(name="bounded", description="d", agents=[EchoAgent(), scenario.UserSimulatorAgent()],
                            script=[scenario.proceed(turns=2), scenario.succeed("two turns went fine")])
    assert bounded.success and len([m for m in bounded.messages if m["role"] == "user"]) == 2


async def test_judge_checkpoint_continues_or_fails_at_once(execute, configured):
    judge = scenario.JudgeAgent(criteria=["final ok"])
    passed = await execute(
        name="checkpoint", description="d", agents=[EchoAgent(), scenario.UserSimulatorAgent(), judge],
        script=[scenario.user("hi"), scenario.agent(), scenario.judge(criteria=["acknowledges"]),
                scenario.user(), scenario.agent(), scenario.judge()],
    )
    assert passed.success
    assert [c.requirement for c in passed.criteria] == ["acknowledges", "final ok"]
    assert len(passed.messages) == 4

    failed = await execute(
        name="checkpoint-fail", description="d", agents=[EchoAgent(), scenario.UserSimulatorAgent(), judge],
        script=[scenario.user("hi"), scenario.agent(), scenario.judge(criteria=["never [mock:fail]"]),
                scenario.user(), scenario.agent(), scenario.succeed()],
    )
    assert not failed.success and failed.failed_criteria == ["never [mock:fail]"]
    assert len(failed.messages) == 2  # stopped at the checkpoint


async def test_proceed_turns_and_callbacks(execute, configured):
    turns, steps = [], []
    result = await execute(
        name="proceed", description="[mock:turns=9] d", agents=team(["ok"]),
        script=[
            scenario.proceed(turns=2, on_turn=lambda s: turns.append(s.current_turn), on_step=lambda s: steps.append(len(s.messages))),
            scenario.succeed("two turns done"),
        ],
    )
    assert result.success and result.reasoning == "two turns done"
    assert turns == [0, 1]
    assert len([m for m in result.messages if m["role"] == "assistant"]) == 2
    assert len(steps) == 6  # user, agent, judge per turn


async def test_sync_agent_under_autopilot(execute, configured):
    result = await execute(name="sync", description="d", agents=team(["ok"], agent=SyncEchoAgent()))
    assert result.success and result.messages[1]["content"].startswith("sync echo:")


async def test_agent_under_test_usage_via_acompletion_and_report_usage(execute, configured):
    class LlmAgent(scenario.AgentAdapter):
        async def call(self, input):
            response = await scenario.acompletion(
                model=configured.model, api_base=configured.api_base, api_key="mock", messages=input.messages
            )
            return response.choices[0].message.content

    class ReportingAgent(scenario.AgentAdapter):
        def call(self, input):
            scenario.report_usage(input_tokens=100, output_tokens=50, cost_usd=0.5, model="my-model")
            return "reported"

    result = await execute(name="agent-usage", description="d", agents=team(["ok"], agent=LlmAgent()))
    assert result.usage.by_role["agent"].calls == 2 and result.usage.by_role["agent"].cost_usd > 0
    assert result.usage.calls == 6

    reported = await execute(name="reported", description="d", agents=team(["ok"], agent=ReportingAgent()))
    agent_usage = reported.usage.by_role["agent"]
    assert (agent_usage.calls, agent_usage.input_tokens, agent_usage.cost_usd) == (2, 200, 1.0)
    assert reported.usage.by_model["my-model"].output_tokens == 100


async def test_model_error_after_retries_gives_failed_result(execute, configured):
    result = await execute(name="broken", description="[mock:error=500] d", agents=team(["ok"]))
    assert not result.success
    assert result.error.type == "ModelCallError"
    assert "user model call" in result.reasoning and "after 3 attempts" in result.reasoning
    assert "UserSimulatorAgent" in result.error.where


async def test_bad_request_is_not_retried(execute, configured):
    with MockLLMServer() as server:
        server.fail_next(5, status=400)
        result = await execute(
            name="bad", description="d",
            agents=[EchoAgent(), scenario.UserSimulatorAgent(api_base=server.base_url), scenario.JudgeAgent(criteria=["x"])],
        )
        assert server.stats.requests == 1
    assert not result.success and "rejected the request as invalid" in result.reasoning
    assert "Not retried" in result.reasoning


async def test_rate_limit_is_retried_then_succeeds(execute, configured):
    with MockLLMServer() as server:
        server.fail_next(2, status=429, retry_after=0.01)
        result = await execute(
            name="429", description="d",
            agents=[EchoAgent(), scenario.UserSimulatorAgent(api_base=server.base_url), scenario.JudgeAgent(criteria=["x"])],
        )
    assert result.success, result.reasoning


async def test_hung_model_call_times_out(execute, configured):
    scenario.configure(default_model=configured.merged(timeout=0.3))
    result = await execute(name="hang", description="[mock:hang] d", agents=team(["ok"]), timeout=30)
    assert not result.success and result.error.type == "ModelCallError"
    assert "no answer within 0.3s per attempt" in result.reasoning


async def test_simulator_and_judge_need_a_model():
    with pytest.raises(scenario.ScenarioConfigError, match="no model given"):
        scenario.UserSimulatorAgent().model_config()


async def test_custom_system_prompts_fill_placeholders(configured):
    judge = scenario.JudgeAgent(criteria=["c"], system_prompt="Judge {description} on {criteria}")
    user = scenario.UserSimulatorAgent(system_prompt="You are a user simulator. Story: {description}")
    result = await scenario.arun(name="prompts", description="the story", agents=[EchoAgent(), user, judge])
    assert result.success and "the story" in result.messages[0]["content"]
