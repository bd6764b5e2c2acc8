"""The public surface is a checked artefact: ``scenario.__all__`` and ``scenario.testing.__all__`` are
pinned name by name, every lazily loaded name resolves to the object its home module defines, and
``dir()`` shows the lazy names before first use.

Changing the surface is allowed, on purpose only: edit the lists below in the same commit, and say
in changelog.d what users gain or lose. A name that silently disappears (a moved module, a typo in
the lazy map) fails here instead of in a user's ``from scenario import ...``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import import_module

import pytest

import scenario
import scenario.testing

# Imported by ``import scenario`` itself: running one scenario, its result, script steps, settings.
CORE = {
    "AgentAdapter", "AgentInput", "AgentReturnError", "AgentReturnTypes", "AgentRole", "CriterionResult",
    "ErrorInfo", "JudgeAgent", "JudgmentRequest", "ModelCallError", "ModelConfig", "ScenarioConfig",
    "ScenarioConfigError", "ScenarioError", "ScenarioResult", "ScenarioState", "ToolCall", "ToolCalls", "Usage",
    "UsageTotals", "UserSimulatorAgent", "agent", "arun", "cache", "configure", "fail", "judge", "message",
    "proceed", "report_usage", "run", "succeed", "user",
    # langwatch-scenario's configuration snapshot; here always the current settings.
    "default_config",
}

# Loaded on first touch (scenario._LAZY): batches, the store, the model client, concurrency.
LAZY_LIBRARY = {
    "acompletion", "SlidingWindow", "Adaptive", "ConcurrencyStrategy", "RateLimit", "RetryPolicy", "Scenario",
    "run_batch", "BatchResult", "RunRecord", "ResultStore", "BatchInfo", "StoreError",
}

# langwatch-scenario's names (docs/migrating.md): red teaming and evaluators work here...
PEER_WORKING = {
    "RedTeamAgent", "RedTeamStrategy", "CrescendoStrategy", "GoatStrategy", "AttackerOutput", "AttackTechnique",
    "Technique", "DEFAULT_TECHNIQUES", "DEFAULT_GOAT_TECHNIQUES", "evaluator", "field", "value", "conversation",
    "trace", "scenario_source", "EvaluationResult", "EvaluatorMapping", "ScenarioEvaluator",
}

# ...and these import (a shared conftest may name them) but need the LangWatch platform or a voice stack.
PEER_IMPORT_ONLY = {
    "audio", "dtmf", "interrupt", "silence", "sleep", "InterruptionConfig", "effects", "AdapterCapabilities",
    "AudioChunk", "AudioSegment", "LatencyMetrics", "ComposableVoiceAgent", "ElevenLabsSTTProvider",
    "ElevenLabsVoiceAgent", "OpenAISTTProvider", "STTProvider", "UnsupportedCapabilityError",
    "AgentStreamEndedError", "FirstChunkTimeoutError", "ModalityNegotiationError", "PipecatRecvError",
    "TunnelNotReadyError", "VoiceAgentAdapter", "VoiceEvent", "VoiceRecording", "register_tts_provider",
    "set_stt_provider", "ElevenLabsAgentAdapter", "GeminiLiveAgentAdapter", "LiveKitAgentAdapter",
    "OpenAIRealtimeAgentAdapter", "PipecatAgentAdapter", "TwilioAgentAdapter", "VapiAgentAdapter",
    "WebRTCAgentAdapter", "WebSocketAgentAdapter", "WebSocketProtocol", "setup_scenario_tracing", "scenario_only",
    "with_custom_scopes", "realtime_langwatch_session", "ConnectedAgentAdapter", "ConnectedAgentCall",
    "NotSupportedError", "TraceView", "TurnView",
}

PUBLIC = CORE | LAZY_LIBRARY | PEER_WORKING | PEER_IMPORT_ONLY

# The HTTP mock server (end to end through litellm) and the in-process function model (unit tests of a prompt).
TESTING_PUBLIC = {
    "MockLLMServer", "MockBehavior", "MockStats", "Fault", "FunctionModel", "ModelRequestSeen", "ToolCallReply",
    "judge_verdict",
}


def test_scenario_all_is_exactly_the_pinned_surface():
    assert len(scenario.__all__) == len(set(scenario.__all__)), "a name is listed twice in scenario.__all__"
    assert set(scenario.__all__) - PUBLIC == set(), "new public names: pin them here on purpose"
    assert PUBLIC - set(scenario.__all__) == set(), "public names were removed from scenario.__all__"


def test_the_lazy_map_holds_exactly_the_names_not_imported_up_front():
    assert set(scenario._LAZY) == LAZY_LIBRARY | PEER_WORKING | PEER_IMPORT_ONLY


@pytest.mark.parametrize("name", sorted(scenario._LAZY))
def test_every_lazy_name_resolves_to_the_object_its_home_module_defines(name):
    home = import_module(f"scenario.{scenario._LAZY[name]}")
    assert getattr(scenario, name) is getattr(home, name)


def test_every_public_name_resolves_and_star_import_binds_them_all():
    namespace: dict = {}
    exec("from scenario import *", namespace)
    missing = sorted(name for name in scenario.__all__ if name not in namespace)
    assert not missing, f"`from scenario import *` did not bind {missing}"
    assert callable(scenario.run) and callable(namespace["run_batch"])


def test_dir_shows_the_lazy_names_before_first_use():
    # A fresh interpreter, so no earlier test has resolved (and cached) a lazy name yet.
    code = (
        "import json, scenario\n"
        "print(json.dumps({'dir': dir(scenario), 'loaded': sorted(n for n in scenario._LAZY if n in vars(scenario))}))"
    )
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert out["loaded"] == [], "lazy names were resolved by `import scenario` itself"
    assert PUBLIC - set(out["dir"]) == set()


def test_import_scenario_leaves_the_batch_machinery_and_the_store_for_later():
    # The package docstring promises it: the batch machinery and the mock server load on first use.
    code = (
        "import json, sys, scenario\n"
        "print(json.dumps(sorted(m for m in ('scenario.batch', 'scenario.store', 'scenario.testing.mock_llm')"
        " if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_an_unknown_name_is_an_attribute_error_that_names_it():
    with pytest.raises(AttributeError, match="module 'scenario' has no attribute 'run_bacth'"):
        scenario.run_bacth  # noqa: B018


def test_scenario_testing_all_is_pinned_and_resolves():
    assert sorted(scenario.testing.__all__) == sorted(TESTING_PUBLIC)
    assert TESTING_PUBLIC <= set(dir(scenario.testing))
    for name in TESTING_PUBLIC:
        home = import_module(scenario.testing._LAZY[name])
        assert getattr(scenario.testing, name) is getattr(home, name)
    with pytest.raises(AttributeError, match="scenario.testing"):
        scenario.testing.NoSuchHelper  # noqa: B018
