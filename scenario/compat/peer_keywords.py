"""``run``/``arun`` keywords that langwatch-scenario accepts for its hosted platform or voice stack.

Policy: a suite written for langwatch-scenario must not stop at a ``TypeError``, so every such
keyword is accepted. This library has no hosted platform and no voice support, so when one is
set to something other than its default it has no effect, and we say so once per keyword and
process (a ``UserWarning`` naming it) rather than on every run: a suite of 500 scenarios should
print one line, not 500. Left at the default, nothing is said.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

# keyword -> why it does nothing here (shown in the warning).
WITHOUT_EFFECT: dict[str, str] = {
    "fetch_remote_traces": "it fetches traces from the LangWatch platform",
    "trace_wait_timeout": "it bounds the wait for LangWatch platform traces",
    "parameters": "it parameterises LangWatch connected agents (langwatch.connect_agent)",
    "evaluators": "LangWatch evaluators run on the LangWatch platform",
    "on_audio_chunk": "voice scenarios are not supported",
    "on_voice_event": "voice scenarios are not supported",
    "audio_playback": "voice scenarios are not supported",
}

_warned: set[str] = set()
_lock = threading.Lock()


class NoEffectWarning(UserWarning):
    """A langwatch-scenario keyword was set that this library accepts but does not act on."""


def warn_ignored(values: dict[str, Any]) -> None:
    """Warn once per keyword set to a non-default value (None, False, empty are defaults)."""
    for name, value in values.items():
        if name not in WITHOUT_EFFECT or value is None or value is False or value == [] or value == {}:
            continue
        with _lock:
            if name in _warned:
                continue
            _warned.add(name)
        warnings.warn(
            f"scenario.run({name}=...) has no effect in this library: {WITHOUT_EFFECT[name]}. "
            "It is accepted so suites written for langwatch-scenario run unchanged; see docs/migrating.md.",
            NoEffectWarning,
            stacklevel=3,
        )


def reset_warnings() -> None:
    """Forget which keywords were warned about (tests use this)."""
    with _lock:
        _warned.clear()


def warn_step_options(values: dict[str, Any], reason: str = "voice scenarios are not supported") -> None:
    """Warn once per langwatch-scenario option of a step or agent (``user(voice_style=...)``,
    ``JudgeAgent(include_audio=...)``) that is set to something other than None."""
    for label, value in values.items():
        if value is None or value == []:
            continue
        with _lock:
            if label in _warned:
                continue
            _warned.add(label)
        warnings.warn(
            f"{label} has no effect in this library: {reason}. It is accepted so "
            "suites written for langwatch-scenario run unchanged; see docs/migrating.md.",
            NoEffectWarning,
            stacklevel=4,
        )
