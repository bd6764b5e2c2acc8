"""Bad set-up raises ScenarioConfigError before anything runs, with what/where/what-to-do."""

from __future__ import annotations

import pytest

import scenario
from tests.helpers.agents import EchoAgent


@pytest.mark.asyncio
@pytest.mark.parametrize("execute", [scenario.run, scenario.arun], ids=["run", "arun"])
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(agents=[scenario.UserSimulatorAgent(model="m")]), "no agent under test"),
        (dict(agents=[]), "no agent under test"),
        (dict(agents=EchoAgent()), "agents must be a list"),
        (dict(agents=[EchoAgent], script=[]), "is the class EchoAgent, not an instance"),
        (dict(agents=[object()]), "is not an agent adapter"),
        (dict(agents=[EchoAgent()], max_turns=0), "max_turns must be an integer >= 1"),
        (dict(agents=[EchoAgent()], max_turns=2.5), "max_turns must be an integer >= 1"),
        (dict(agents=[EchoAgent()], script=["user says hi"]), r"script\[0\] is a str, not a step"),
        (dict(agents=[EchoAgent()], script="nope"), "script must be a list"),
        (dict(agents=[EchoAgent()]), "no user simulator"),
        (dict(agents=[EchoAgent()], script=[scenario.user()]), "no user simulator"),
        (dict(agents=[EchoAgent()], script=[scenario.user("x"), scenario.judge()]), "no judge"),
        (dict(agents=[EchoAgent()], script=[], timeout=0), "timeout must be a positive number"),
    ],
)
async def test_bad_setup_is_rejected_before_running(execute, kwargs, message):
    with pytest.raises(scenario.ScenarioConfigError, match=message) as info:
        await execute(name="bad one", description="d", **kwargs)
    assert "'bad one'" in str(info.value)


@pytest.mark.asyncio
async def test_name_and_description_are_checked():
    with pytest.raises(scenario.ScenarioConfigError, match="name must be a non-empty string"):
        await scenario.run(name="", description="d", agents=[EchoAgent()], script=[])
    with pytest.raises(scenario.ScenarioConfigError, match="description must be a string"):
        await scenario.arun(name="n", description=None, agents=[EchoAgent()], script=[])


def test_step_constructors_validate():
    with pytest.raises(scenario.ScenarioConfigError, match=r"proceed\(turns=0\)"):
        scenario.proceed(turns=0)
    with pytest.raises(scenario.ScenarioConfigError, match="on_turn"):
        scenario.proceed(on_turn="x")
    with pytest.raises(scenario.ScenarioConfigError, match="list of non-empty strings"):
        scenario.judge(criteria="be nice")
    with pytest.raises(scenario.ScenarioConfigError, match="at least one criterion"):
        scenario.judge(criteria=[])
    with pytest.raises(scenario.ScenarioConfigError, match="'role'"):
        scenario.message({"content": "x"})
    with pytest.raises(scenario.ScenarioConfigError, match=r"scenario.user\(content\)"):
        scenario.user(42)


def test_judge_with_malformed_criteria_is_rejected():
    # None and [] are valid: the criteria may come inline from scenario.judge(criteria=[...]) steps;
    # a judge with no criteria anywhere is rejected when the run starts (tests/compat/test_compat_run.py).
    for bad in ("single string", [""], [42], 7):
        with pytest.raises(scenario.ScenarioConfigError, match="give a list of non-empty criteria"):
            scenario.JudgeAgent(criteria=bad)


def test_configure_validates():
    with pytest.raises(scenario.ScenarioConfigError, match="max_turns"):
        scenario.configure(max_turns=0)
    with pytest.raises(scenario.ScenarioConfigError, match="default_model"):
        scenario.configure(default_model=42)
    with pytest.raises(scenario.ScenarioConfigError, match="tracing"):
        scenario.configure(tracing="jaeger")
    with pytest.raises(scenario.ScenarioConfigError, match="max_workers"):
        scenario.configure(max_workers=0)


def test_configure_keeps_unset_values_and_builds_model_config():
    scenario.configure(default_model="openai/gpt-4o-mini", max_turns=4)
    scenario.configure(verbose=True)
    settings = scenario.config.settings()
    assert settings.default_model.model == "openai/gpt-4o-mini" and settings.max_turns == 4 and settings.verbose
    agent = scenario.JudgeAgent(criteria=["c"], temperature=0.2)
    config = agent.model_config()
    assert config.model == "openai/gpt-4o-mini" and config.temperature == 0.2
