"""Every public name of langwatch-scenario 1.6.0 imports from ours, at the same module paths.

The lists are written out here (read from the installed langwatch-scenario 1.6.0: its
``scenario.__all__`` and the public names of the modules users import from) so this test needs
no copy of that package.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

import scenario

PEER_ALL = [
    "run", "arun", "configure", "default_config", "cache",
    "message", "proceed", "succeed", "fail", "judge", "agent", "user",
    "evaluator", "field", "value", "conversation", "trace", "scenario_source", "EvaluationResult",
    "EvaluatorMapping", "ScenarioEvaluator",
    "audio", "dtmf", "interrupt", "silence", "sleep", "InterruptionConfig", "effects",
    "AdapterCapabilities", "AudioChunk", "AudioSegment", "LatencyMetrics", "ComposableVoiceAgent",
    "ElevenLabsSTTProvider", "ElevenLabsVoiceAgent", "OpenAISTTProvider", "STTProvider", "UnsupportedCapabilityError",
    "AgentStreamEndedError", "FirstChunkTimeoutError", "ModalityNegotiationError", "PipecatRecvError",
    "TunnelNotReadyError", "VoiceAgentAdapter", "VoiceEvent", "VoiceRecording", "register_tts_provider",
    "set_stt_provider", "ElevenLabsAgentAdapter", "GeminiLiveAgentAdapter", "LiveKitAgentAdapter",
    "OpenAIRealtimeAgentAdapter", "PipecatAgentAdapter", "TwilioAgentAdapter", "VapiAgentAdapter",
    "WebRTCAgentAdapter", "WebSocketAgentAdapter", "WebSocketProtocol",
    "setup_scenario_tracing", "scenario_only", "with_custom_scopes", "realtime_langwatch_session",
    "ScenarioResult", "CriterionResult", "AgentInput", "AgentRole", "ScenarioConfig", "AgentReturnTypes",
    "ScenarioState", "AgentAdapter", "ConnectedAgentAdapter", "ConnectedAgentCall", "UserSimulatorAgent",
    "RedTeamAgent", "AttackerOutput", "RedTeamStrategy", "CrescendoStrategy", "GoatStrategy", "AttackTechnique",
    "DEFAULT_TECHNIQUES", "Technique", "DEFAULT_GOAT_TECHNIQUES", "JudgeAgent",
]

PEER_MODULES = {
    "scenario.agent_adapter": ["AgentAdapter"],
    "scenario.types": [
        "AgentInput", "AgentReturnTypes", "AgentRole", "ScenarioResult", "JudgmentRequest", "CriterionResult",
        "ScriptStep", "ChatCompletionMessageParamWithTrace", "ChatCompletionAssistantMessageParamWithTrace",
        "ChatCompletionDeveloperMessageParamWithTrace", "ChatCompletionFunctionMessageParamWithTrace",
        "ChatCompletionSystemMessageParamWithTrace", "ChatCompletionToolMessageParamWithTrace",
        "ChatCompletionUserMessageParamWithTrace",
    ],
    "scenario.settings": ["ModelConfig", "ScenarioConfig", "LangWatchSettings"],
    "scenario.scenario_state": ["ScenarioState", "ToolCalls", "TraceView", "TurnView"],
    "scenario.script": ["agent", "fail", "judge", "message", "proceed", "succeed", "user"],
    "scenario.judge_agent": ["JudgeAgent"],
    "scenario.user_simulator_agent": ["UserSimulatorAgent"],
    "scenario.red_team_agent": ["RedTeamAgent"],
    "scenario.cache": ["scenario_cache"],
    "scenario.evaluators": [
        "EvaluationCost", "EvaluationResult", "EvaluationStatus", "EvaluatorMapping", "EvaluatorMappingLiteral",
        "ScenarioEvaluator", "StateMapping", "ToolCallPick", "ToolCallsMapping", "conversation", "evaluator",
        "field", "scenario_source", "trace", "value",
    ],
    "scenario.connected_agent": ["ConnectedAgentAdapter", "ConnectedAgentCall"],
    "scenario.pytest_plugin": [],
    "scenario.scenario_executor": ["run", "arun"],
}


@pytest.mark.parametrize("name", PEER_ALL)
def test_every_name_of_the_peers_all_imports_from_scenario(name):
    assert hasattr(scenario, name), f"scenario.{name} is missing"
    assert name in scenario.__all__


@pytest.mark.parametrize("module,names", sorted(PEER_MODULES.items()))
def test_the_peers_module_paths_import_with_their_names(module, names):
    loaded = importlib.import_module(module)
    missing = [n for n in names if not hasattr(loaded, n)]
    assert not missing, f"{module} lacks {missing}"


# Importable from the peer's `scenario` though not in its __all__ (its state views).
PEER_EXTRA = ["ToolCall", "ToolCalls", "TraceView", "TurnView"]


@pytest.mark.parametrize("name", PEER_EXTRA)
def test_the_peers_state_view_names_import_from_scenario(name):
    assert hasattr(scenario, name)


def test_span_view_classes_import_but_refuse_to_be_built():
    with pytest.raises(scenario.NotSupportedError, match="span collection"):
        scenario.TurnView()


def test_star_import_gives_every_peer_name():
    namespace: dict = {}
    exec("from scenario import *", namespace)
    assert sorted(set(PEER_ALL) - set(namespace)) == []


def test_module_paths_are_the_same_objects_as_the_top_level_names():
    from scenario.agent_adapter import AgentAdapter
    from scenario.cache import scenario_cache
    from scenario.judge_agent import JudgeAgent
    from scenario.red_team_agent import RedTeamAgent
    from scenario.scenario_state import ScenarioState
    from scenario.settings import ModelConfig, ScenarioConfig
    from scenario.types import AgentInput, ScenarioResult
    from scenario.user_simulator_agent import UserSimulatorAgent

    assert (AgentAdapter, JudgeAgent, UserSimulatorAgent, ScenarioState, AgentInput, ScenarioResult, ModelConfig) == (
        scenario.AgentAdapter, scenario.JudgeAgent, scenario.UserSimulatorAgent, scenario.ScenarioState,
        scenario.AgentInput, scenario.ScenarioResult, scenario.ModelConfig,
    )
    assert RedTeamAgent is scenario.RedTeamAgent and ScenarioConfig is scenario.ScenarioConfig
    assert scenario_cache is scenario.cache and callable(scenario.cache)


def test_importing_scenario_cache_module_keeps_scenario_cache_the_decorator():
    code = "import scenario.cache, scenario\nprint(callable(scenario.cache), type(scenario.cache).__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "function"]


def test_peer_names_do_not_make_import_scenario_heavy():
    code = (
        "import sys, scenario\n"
        "from scenario import RedTeamAgent, evaluator, TunnelNotReadyError, ScenarioConfig\n"
        "import scenario.agent_adapter, scenario.types, scenario.judge_agent, scenario.red_team_agent\n"
        "print('litellm' in sys.modules, 'rich' in sys.modules, 'aiohttp' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]


@pytest.mark.parametrize("name", ["ElevenLabsAgentAdapter", "ConnectedAgentAdapter", "InterruptionConfig"])
def test_voice_and_platform_classes_refuse_to_be_built_with_a_clear_error(name):
    with pytest.raises(scenario.NotSupportedError, match=rf"scenario.{name} belongs to langwatch-scenario's .*migrating"):
        getattr(scenario, name)()


def test_voice_steps_and_helpers_refuse_when_used():
    with pytest.raises(scenario.NotSupportedError, match="voice support"):
        scenario.audio("hello.wav")
    with pytest.raises(scenario.NotSupportedError, match="scenario.effects.background_noise"):
        scenario.effects.background_noise(0.1)


def test_voice_errors_are_real_exception_classes():
    try:
        raise scenario.TunnelNotReadyError("x")
    except scenario.TunnelNotReadyError as exc:
        assert isinstance(exc, scenario.ScenarioError)


def test_tracing_setup_warns_that_it_has_no_effect():
    with pytest.warns(UserWarning, match="setup_scenario_tracing.*no effect"):
        assert scenario.setup_scenario_tracing() is None


def test_scenario_config_configure_is_configure():
    scenario.ScenarioConfig.configure(max_turns=7)
    assert scenario.default_config.max_turns == 7


def test_criterion_result_takes_either_name_for_the_criterion():
    a = scenario.CriterionResult(criterion="Polite", status="passed")
    b = scenario.CriterionResult(requirement="Polite", status="passed")
    assert (a.requirement, a.criterion) == (b.requirement, b.criterion) == ("Polite", "Polite")
    with pytest.raises(ValueError, match="criterion text"):
        scenario.CriterionResult(status="passed")


def test_judgment_request_context_is_a_deprecated_alias():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        request = scenario.JudgmentRequest(context="ls output")
    assert request.additional_context == "ls output"
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


def test_evaluator_helpers_build_descriptions_and_mappings_read_the_state():
    spec = scenario.evaluator("ragas/sql_query_equivalence", mappings={"expected": scenario.field("golden_sql")})
    assert spec.evaluator == "ragas/sql_query_equivalence"
    state = scenario.ScenarioState(description="d", thread_id="t", fields={"golden_sql": "SELECT 1"})
    state.messages.append({"role": "user", "content": "hi"})
    assert spec.mappings["expected"](state) == "SELECT 1"
    assert scenario.conversation.first_user_message(state) == "hi"
    assert scenario.value(3)(state) == 3
    assert scenario.conversation.last_agent_message(state) is None
    assert scenario.trace.tool_calls("run_sql").last.input(state) is None
    state.add_message({"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "run_sql", "arguments": '{"sql": "SELECT 1"}'}}]})
    state.add_message({"role": "tool", "tool_call_id": "c1", "content": "1"})
    state.add_message({"role": "assistant", "content": "One row."})
    assert scenario.conversation.last_agent_message(state) == "One row."
    assert scenario.trace.tool_calls("run_sql").last.input(state) == {"sql": "SELECT 1"}
    assert scenario.trace.tool_calls("run_sql").first.output(state) == "1"
    assert scenario.trace.tool_calls("run_sql").inputs(state) == [{"sql": "SELECT 1"}]
    assert scenario.trace.tool_calls("run_sql").outputs(state) == ["1"]
    with pytest.raises(scenario.ScenarioConfigError, match="name the evaluator"):
        scenario.evaluator("")
