"""Settings are checked, and what verbose/debug print: configure() did-you-mean, debug output with
credentials redacted, verbose conversations (Python API and `scenario run -v`)."""

from __future__ import annotations

import textwrap

import pytest

import scenario
from scenario.cli import main as cli


class Echo(scenario.AgentAdapter):
    async def call(self, input: scenario.AgentInput) -> str:
        return f"echo: {input.last_new_user_message_str()}"


@pytest.mark.parametrize("key, hint", [("max_turn", "did you mean 'max_turns'?"), ("verbos", "did you mean 'verbose'?"),
                                       ("temperature", "Model parameters")])
def test_configure_rejects_unknown_settings_with_a_did_you_mean(key, hint):
    before = scenario.configure().max_turns
    with pytest.raises(scenario.ScenarioConfigError, match=rf"configure\(\): unknown setting '{key}'") as info:
        scenario.configure(**{key: 5})
    assert hint in str(info.value) and "Known settings: default_model, max_turns" in str(info.value)
    assert scenario.configure().max_turns == before  # nothing half-applied


@pytest.mark.asyncio
async def test_debug_prints_model_requests_and_responses_with_credentials_redacted(mock_server, capsys):
    scenario.configure(debug=True, default_model=scenario.ModelConfig(
        model="openai/gpt-4o-mini", api_base=mock_server.base_url, api_key="sk-live-123",
        extra_headers={"Authorization": "Bearer sk-live-123", "X-Team": "support"}))
    result = await scenario.run(name="debugged", description="A user says hi.",
                                agents=[Echo(), scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=["ok"])])
    out, err = capsys.readouterr()
    assert result.success
    assert "[scenario debug] user -> openai/gpt-4o-mini" in err and "[scenario debug] judge <- " in err
    assert '"messages"' in err and '"input_tokens"' in err and '"X-Team": "support"' in err
    assert "sk-live-123" not in err + out
    assert '"api_key": "***"' in err and '"Authorization": "***"' in err
    assert "[debugged] user: " in out and "[debugged] assistant: echo: " in out  # the conversation too


@pytest.mark.asyncio
async def test_verbose_prints_the_conversation_as_it_happens(configured, capsys):
    await scenario.run(name="chatty", description="d", agents=[Echo()], verbose=True,
                       script=[scenario.user("hello there"), scenario.agent(), scenario.succeed()])
    out = capsys.readouterr().out
    assert "[chatty] user: hello there" in out and "[chatty] assistant: echo: hello there" in out


def test_scenario_run_dash_v_prints_conversations(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "echo_agent.py").write_text(textwrap.dedent("""
        import scenario

        class Echo(scenario.AgentAdapter):
            async def call(self, input):
                return "echo: " + input.last_new_user_message_str()

        def make():
            return Echo()
    """))
    (tmp_path / "suite.yaml").write_text(textwrap.dedent("""
        name: talk
        agent: echo_agent:make
        scenarios:
          - {name: hello, description: greeting, script: [{user: good morning}, agent, succeed]}
    """))
    code = cli.main(["run", "suite.yaml", "--store", "r.db", "-v", "--progress", "off"])
    out = capsys.readouterr().out
    assert code == 0
    assert "[hello] user: good morning" in out and "[hello] assistant: echo: good morning" in out
