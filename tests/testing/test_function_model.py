"""scenario.testing.FunctionModel: unit tests of a prompt with no server and no litellm."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import scenario
from scenario.errors import ModelCallError, ScenarioConfigError
from scenario.llm import client as models
from scenario.run_context import RunContext, current_run
from scenario.testing import FunctionModel, ToolCallReply, judge_verdict

CRITERION = "The agent asks for the order number"


class AsksForOrderNumber(scenario.AgentAdapter):
    async def call(self, input: scenario.AgentInput) -> str:
        return "Sorry to hear that. Could you give me your order number?"


class Shrugs(scenario.AgentAdapter):
    async def call(self, input: scenario.AgentInput) -> str:
        return "No idea, sorry."


def strict_judge(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ToolCallReply:
    """A stand-in for the judge model: passes only when the transcript shows the question."""
    transcript = messages[-1]["content"]
    return judge_verdict(tools, "passed" if "order number" in transcript else "failed", "read the transcript")


async def _run(agent: scenario.AgentAdapter, judge: FunctionModel, user: FunctionModel) -> scenario.ScenarioResult:
    return await scenario.arun(
        name="function model",
        description="A customer's parcel has not arrived.",
        agents=[agent, scenario.UserSimulatorAgent(model=user), scenario.JudgeAgent(criteria=[CRITERION], model=judge)],
        script=[scenario.user(), scenario.agent(), scenario.judge()],
    )


@pytest.mark.asyncio
@pytest.mark.parametrize(("agent", "passed"), [(AsksForOrderNumber(), True), (Shrugs(), False)])
async def test_a_judge_verdict_comes_from_the_function_model(agent: scenario.AgentAdapter, passed: bool):
    judge = FunctionModel(strict_judge)
    result = await _run(agent, judge, FunctionModel(lambda messages, tools: "My parcel never came."))

    assert result.success is passed
    assert (result.passed_criteria if passed else result.failed_criteria) == [CRITERION]
    [request] = judge.requests
    assert request.role == "judge" and CRITERION in request.messages[0]["content"]
    assert [t["function"]["name"] for t in request.tools] == ["finish_test"]  # a forced verdict
    assert result.usage.by_model["function:strict_judge"].calls == 1 and result.usage.cost_usd == 0.0


@pytest.mark.asyncio
async def test_a_simulator_turn_comes_from_the_function_model():
    def user(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
        assert not tools and messages[0]["role"] == "system"
        return "  Where is my parcel?  "

    simulator = FunctionModel(user, name="customer")
    result = await _run(AsksForOrderNumber(), FunctionModel(strict_judge), simulator)

    assert result.messages[0] == {"role": "user", "content": "Where is my parcel?"}
    assert "parcel has not arrived" in simulator.requests[0].messages[0]["content"]  # the description reached the prompt
    assert simulator.requests[0].role == "user"
    assert "function:customer" in result.usage.by_model


@pytest.mark.asyncio
async def test_a_tool_call_reply_comes_back_as_the_model_s_tool_calls():
    async def caller(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[ToolCallReply]:  # async works too
        return [ToolCallReply("lookup_order", {"order": 42}), ToolCallReply("notify", {})]

    model = FunctionModel(caller)
    config = scenario.ModelConfig(model=model.name, client=model)
    response = await models.complete(role="judge", config=config, messages=[{"role": "user", "content": "?"}],
                                     tools=[{"type": "function", "function": {"name": "lookup_order"}}])

    assert response.content is None
    assert [c["function"]["name"] for c in response.tool_calls] == ["lookup_order", "notify"]
    assert json.loads(response.tool_calls[0]["function"]["arguments"]) == {"order": 42}
    assert response.message()["tool_calls"] == response.tool_calls


@pytest.mark.asyncio
async def test_what_the_function_raises_fails_the_call_as_a_model_error_recorded_in_the_run():
    def broken(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
        raise KeyError("no such fixture")

    model = FunctionModel(broken)
    run = RunContext(name="r", thread_id="t")
    token = current_run.set(run)
    try:
        with pytest.raises(ModelCallError) as caught:
            await models.complete(role="user", config=scenario.ModelConfig(model=model.name, client=model),
                                  messages=[{"role": "user", "content": "?"}])
    finally:
        current_run.reset(token)
    assert isinstance(caught.value.original, KeyError) and caught.value.attempts == 1  # not transient: no retry
    assert run.model_calls[0].error.startswith("KeyError")


@pytest.mark.asyncio
async def test_an_unusable_return_value_says_what_is_accepted():
    model = FunctionModel(lambda messages, tools: 42, name="answers_a_number")
    with pytest.raises(ModelCallError) as caught:
        await models.complete(role="user", config=scenario.ModelConfig(model=model.name, client=model),
                              messages=[{"role": "user", "content": "?"}])
    assert "function:answers_a_number returned 42" in str(caught.value.original)
    assert "ToolCallReply" in str(caught.value.original)


@pytest.mark.asyncio
async def test_a_function_model_is_never_replayed_from_the_cache(tmp_path):
    scenario.configure(cache_key="fixed", cache_dir=str(tmp_path))
    answers = iter(["first", "second"])
    model = FunctionModel(lambda messages, tools: next(answers))
    config = scenario.ModelConfig(model=model.name, client=model)
    contents = [(await models.complete(role="user", config=config, messages=[{"role": "user", "content": "?"}])).content
                for _ in range(2)]
    assert contents == ["first", "second"]


def test_judge_verdict_rules_per_criterion_and_refuses_a_request_without_finish_test():
    from scenario.agents.judge import criterion_keys, finish_test_tool

    criteria = ["Greets the user", "Asks for the order number"]
    tools = [finish_test_tool(criterion_keys(criteria), criteria)]
    call = judge_verdict(tools, {"Asks for the order number": "failed"})
    statuses = {key: value["status"] for key, value in call.arguments["criteria"].items()}
    assert statuses == {"1_greets_the_user": "passed", "2_asks_for_the_order_number": "failed"}
    with pytest.raises(ValueError, match="no finish_test"):
        judge_verdict([])


def test_bad_arguments_are_refused_where_they_are_given():
    with pytest.raises(TypeError, match="FunctionModel"):
        FunctionModel("not a function")  # type: ignore[arg-type]
    with pytest.raises(ScenarioConfigError, match="FunctionModel"):
        scenario.JudgeAgent(criteria=[CRITERION], model="openai/x", client=object())


def test_a_run_with_function_models_imports_no_litellm():
    code = (
        "import asyncio, sys, scenario\n"
        "from scenario.testing import FunctionModel\n"
        "class A(scenario.AgentAdapter):\n"
        "    async def call(self, input): return 'hi'\n"
        "result = asyncio.run(scenario.arun(name='n', description='d', agents=[A(),\n"
        "    scenario.UserSimulatorAgent(model=FunctionModel(lambda m, t: 'hello')),\n"
        "    scenario.JudgeAgent(criteria=['c'], model=FunctionModel(lambda m, t: 'no tool call'))],\n"
        "    script=[scenario.user(), scenario.agent(), scenario.proceed(turns=1)]))\n"
        "print(result.messages[0]['content'], 'litellm' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["hello", "False"]


def test_the_example_runs_offline():
    example = Path(__file__).resolve().parents[2] / "examples" / "function_model.py"
    done = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "passed: True" in done.stdout and "passed: False" in done.stdout


@pytest.mark.asyncio
async def test_acompletion_refuses_a_function_model_saying_where_it_belongs():
    with pytest.raises(ScenarioConfigError, match="in-process model"):
        await scenario.acompletion(model="function:x", messages=[], client=FunctionModel(lambda m, t: "x"))
