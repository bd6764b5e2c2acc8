"""``from scenario.config import ModelConfig, ScenarioConfig``: langwatch-scenario's module path.

The settings live in :mod:`scenario.settings`; this module only re-exports them.
"""

from __future__ import annotations

from scenario.settings import (
    DEFAULT_MAX_TURNS,
    DEFAULT_MODEL_TIMEOUT,
    LangWatchSettings,
    ModelConfig,
    ScenarioConfig,
    Settings,
    configure,
    settings,
)

__all__ = [
    "DEFAULT_MAX_TURNS", "DEFAULT_MODEL_TIMEOUT", "LangWatchSettings", "ModelConfig", "ScenarioConfig", "Settings",
    "configure", "settings",
]
