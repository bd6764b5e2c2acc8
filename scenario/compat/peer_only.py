"""Public names of langwatch-scenario for features this library does not have: voice agents,
LangWatch-connected agents and LangWatch tracing set-up.

Policy: a suite written for langwatch-scenario often imports more than it uses (a shared
conftest, ``from scenario import *``), so every public name it exports must import here. Names
whose feature needs the LangWatch platform or a voice stack are importable, and *using* one
(constructing the class, calling the function) raises :class:`NotSupportedError` saying what
is missing and where to read more, instead of half-working. Their exception classes are real,
so ``except scenario.TunnelNotReadyError`` still parses and catches nothing. Tracing set-up is
the exception: our spans already go to the application's tracer provider, so those calls warn
once that they have no effect and return normally.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NoReturn

from scenario.errors import ScenarioConfigError, ScenarioError

MIGRATING = "docs/migrating.md"


class NotSupportedError(ScenarioConfigError):
    """A langwatch-scenario feature this library does not provide was used."""


def _refuse(name: str, feature: str) -> NoReturn:
    raise NotSupportedError(
        f"scenario.{name} belongs to langwatch-scenario's {feature}, which this library does not provide. "
        f"Remove it from this test, or keep running that test with langwatch-scenario; see {MIGRATING}."
    )


class _Unavailable:
    """Base of the placeholder classes: importable, subclassable, refuses to be built."""

    _feature = "voice support"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _refuse(type(self).__name__, self._feature)


def _placeholder_class(name: str, feature: str) -> type:
    return type(name, (_Unavailable,), {"_feature": feature, "__module__": __name__,
                                        "__doc__": f"langwatch-scenario's {name} ({feature}): not available here."})


def _placeholder_function(name: str, feature: str) -> Callable[..., NoReturn]:
    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        _refuse(name, feature)

    refuse.__name__ = refuse.__qualname__ = name
    refuse.__doc__ = f"langwatch-scenario's scenario.{name} ({feature}): raises NotSupportedError here."
    return refuse


class _RefusingNamespace:
    """Stands in for a module of helpers (``scenario.effects``): any attribute use refuses."""

    def __init__(self, name: str, feature: str) -> None:
        self._name, self._feature = name, feature

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        _refuse(f"{self._name}.{attribute}", self._feature)


VOICE = "voice support"
CONNECTED = "LangWatch connected agents (langwatch.connect_agent)"
REALTIME = "LangWatch realtime sessions"
SPANS = "in-process span collection (ScenarioState.spans/.traces/.turns)"

_CLASSES: tuple[tuple[str, str], ...] = tuple(
    (name, VOICE)
    for name in (
        "AdapterCapabilities", "AudioChunk", "AudioSegment", "LatencyMetrics", "ComposableVoiceAgent",
        "ElevenLabsSTTProvider", "ElevenLabsVoiceAgent", "OpenAISTTProvider", "STTProvider", "VoiceAgentAdapter",
        "VoiceEvent", "VoiceRecording", "ElevenLabsAgentAdapter", "GeminiLiveAgentAdapter", "LiveKitAgentAdapter",
        "OpenAIRealtimeAgentAdapter", "PipecatAgentAdapter", "TwilioAgentAdapter", "VapiAgentAdapter",
        "WebRTCAgentAdapter", "WebSocketAgentAdapter", "WebSocketProtocol", "InterruptionConfig",
    )
) + (("ConnectedAgentAdapter", CONNECTED), ("ConnectedAgentCall", CONNECTED), ("TraceView", SPANS), ("TurnView", SPANS))

_FUNCTIONS: tuple[tuple[str, str], ...] = tuple(
    (name, VOICE) for name in ("audio", "dtmf", "interrupt", "silence", "sleep", "register_tts_provider", "set_stt_provider")
) + (("realtime_langwatch_session", REALTIME),)

_ERRORS = (
    "UnsupportedCapabilityError", "AgentStreamEndedError", "FirstChunkTimeoutError", "ModalityNegotiationError",
    "PipecatRecvError", "TunnelNotReadyError",
)

_names: dict[str, Any] = {}
for _name, _feature in _CLASSES:
    _names[_name] = _placeholder_class(_name, _feature)
for _name, _feature in _FUNCTIONS:
    _names[_name] = _placeholder_function(_name, _feature)
for _name in _ERRORS:
    # Real exceptions (never raised here) so `except` clauses naming them keep working.
    _names[_name] = type(_name, (ScenarioError,), {"__module__": __name__,
                                                   "__doc__": f"langwatch-scenario's voice error {_name}."})
_names["effects"] = _RefusingNamespace("effects", VOICE)
globals().update(_names)


def _warn_tracing(name: str) -> None:
    warnings.warn(
        f"scenario.{name}(...) has no effect in this library: scenario's spans go to the application's "
        "OpenTelemetry tracer provider (or configure(tracing='otlp')); see docs/observability.md.",
        UserWarning,
        stacklevel=3,
    )


def setup_scenario_tracing(*args: Any, **kwargs: Any) -> None:
    """langwatch-scenario's LangWatch tracing set-up: warns that it has no effect, returns None."""
    _warn_tracing("setup_scenario_tracing")


def scenario_only(*args: Any, **kwargs: Any) -> None:
    """langwatch-scenario's span filter for setup_scenario_tracing: no effect here."""
    _warn_tracing("scenario_only")


def with_custom_scopes(*args: Any, **kwargs: Any) -> None:
    """langwatch-scenario's span filter for setup_scenario_tracing: no effect here."""
    _warn_tracing("with_custom_scopes")


__all__ = sorted([*_names, "NotSupportedError", "setup_scenario_tracing", "scenario_only", "with_custom_scopes"])
