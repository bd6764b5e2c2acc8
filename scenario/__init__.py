"""scenario: test conversational AI agents by simulation.

A user-simulator model talks to your agent, a judge model decides whether the conversation met
its criteria, and your test asserts on the result::

    result = await scenario.run(
        name="refund request",
        description="A customer wants a refund for a damaged parcel.",
        agents=[MyAgent(), scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=[...])],
    )
    assert result.success, result.reasoning

This module only re-exports the public API. Importing it is cheap and has no side effects:
litellm, OpenTelemetry set-up, the mock server and the batch machinery load on first use.

Policy on the lazy names: the core (running one scenario, its result, the script steps, the
settings) is imported here, at the top. The rest of the public surface sits in ``_LAZY``, a map
from name to the module that defines it, resolved by ``__getattr__`` (PEP 562) on first touch:
the batch runner, the store, the model client and the red-team and peer-compatibility names
would otherwise pull litellm, SQLite set-up and much more into every ``import scenario``. This
is lazy loading by design, the one place in the package where our own modules are imported
inside a function; ``dir(scenario)`` and ``__all__`` list the lazy names like the others, and
tests/test_public_api.py pins the whole surface.
"""

from __future__ import annotations

from importlib import import_module as _import_module
from typing import Any

# `scenario.cache` is the decorator, and `scenario/cache.py` is langwatch-scenario's module path
# for it. Importing the submodule first means a later `import scenario.cache` finds it loaded and
# does not rebind the package attribute from the function to the module.
from scenario import cache as _cache_module  # noqa: F401
from scenario.agents import AgentAdapter, AgentReturnTypes, JudgeAgent, UserSimulatorAgent
from scenario.engine.state import ScenarioState, ToolCall, ToolCalls
from scenario.errors import AgentReturnError, ModelCallError, ScenarioConfigError, ScenarioError
from scenario.executors import arun, run
from scenario.llm.replay_cache import cache
from scenario.messages import AgentInput, AgentRole, JudgmentRequest
from scenario.result import CriterionResult, ErrorInfo, ScenarioResult
from scenario.run_context import report_usage
from scenario.script import agent, fail, judge, message, proceed, succeed, user
from scenario.settings import ModelConfig, ScenarioConfig, configure
from scenario.settings import settings as _current_settings
from scenario.usage import Usage, UsageTotals
from scenario.version import __version__ as __version__

# Heavier or optional pieces, imported when first touched.
_LAZY = {
    "acompletion": "llm.client",
    "SlidingWindow": "concurrency.strategies",
    "Adaptive": "concurrency.strategies",
    "ConcurrencyStrategy": "concurrency.strategies",
    "RateLimit": "concurrency.rate_limits",
    "RetryPolicy": "llm.retry",
    "Scenario": "batch",
    "run_batch": "batch",
    "BatchResult": "batch",
    "RunRecord": "batch",
    "ResultStore": "store",
    "BatchInfo": "store",
    "StoreError": "store",
    # langwatch-scenario names (docs/migrating.md)
    "RedTeamAgent": "agents.red_team",
    "RedTeamStrategy": "agents.red_team_strategies",
    "CrescendoStrategy": "agents.red_team_strategies",
    "GoatStrategy": "agents.red_team_strategies",
    "AttackerOutput": "agents.red_team_strategies",
    "AttackTechnique": "agents.red_team_strategies",
    "Technique": "agents.red_team_strategies",
    "DEFAULT_TECHNIQUES": "agents.red_team_strategies",
    "DEFAULT_GOAT_TECHNIQUES": "agents.red_team_strategies",
    **{name: "evaluators" for name in (
        "evaluator", "field", "value", "conversation", "trace", "scenario_source", "EvaluationResult",
        "EvaluatorMapping", "ScenarioEvaluator",
    )},
    **{name: "compat.peer_only" for name in (
        "audio", "dtmf", "interrupt", "silence", "sleep", "InterruptionConfig", "effects", "AdapterCapabilities",
        "AudioChunk", "AudioSegment", "LatencyMetrics", "ComposableVoiceAgent", "ElevenLabsSTTProvider",
        "ElevenLabsVoiceAgent", "OpenAISTTProvider", "STTProvider", "UnsupportedCapabilityError",
        "AgentStreamEndedError", "FirstChunkTimeoutError", "ModalityNegotiationError", "PipecatRecvError",
        "TunnelNotReadyError", "VoiceAgentAdapter", "VoiceEvent", "VoiceRecording", "register_tts_provider",
        "set_stt_provider", "ElevenLabsAgentAdapter", "GeminiLiveAgentAdapter", "LiveKitAgentAdapter",
        "OpenAIRealtimeAgentAdapter", "PipecatAgentAdapter", "TwilioAgentAdapter", "VapiAgentAdapter",
        "WebRTCAgentAdapter", "WebSocketAgentAdapter", "WebSocketProtocol", "setup_scenario_tracing",
        "scenario_only", "with_custom_scopes", "realtime_langwatch_session", "ConnectedAgentAdapter",
        "ConnectedAgentCall", "NotSupportedError", "TraceView", "TurnView",
    )},
}


# Submodules reachable as attributes without importing them here (``scenario.distributed.Ray``).
_SUBMODULES = ("distributed", "config", "types")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = _import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    if name == "default_config":
        # langwatch-scenario's snapshot of the configuration; here always the current one.
        return _current_settings()
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'scenario' has no attribute {name!r}")

    value = getattr(_import_module(f".{module_name}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    # The lazy names are public too: tab completion and `dir()` should show them before first use.
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "AgentAdapter", "AgentInput", "AgentReturnError", "AgentReturnTypes", "AgentRole", "CriterionResult",
    "ErrorInfo", "JudgeAgent", "JudgmentRequest", "ModelCallError", "ModelConfig", "ScenarioConfig", "ScenarioConfigError",
    "ScenarioError", "ScenarioResult", "ScenarioState", "ToolCall", "ToolCalls", "Usage", "UsageTotals", "UserSimulatorAgent",
    "agent", "arun", "cache", "configure", "fail", "judge", "message", "proceed", "report_usage", "run",
    "succeed", "user", "default_config", *_LAZY,
]
