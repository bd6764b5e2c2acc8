"""``from scenario.scenario_state import ScenarioState``: the module path langwatch-scenario uses.

The state lives in :mod:`scenario.state`; this module only re-exports it.
"""

from .state import ScenarioState, ToolCall, ToolCalls

__all__ = ["ScenarioState", "ToolCall", "ToolCalls"]
